"""Which of a model's versions on disk to serve: TF Serving's ModelVersionPolicy."""

from typing import List, Sequence


class VersionPolicy:
    """ModelVersionPolicy: latest N (default 1), all, or specific versions.

    Args:
        kind: "latest", "all" or "specific".
        num_versions: with "latest", how many of the newest versions to serve.
        versions: with "specific", the version numbers to serve.

    Example:
        >>> VersionPolicy("latest", num_versions=2).select([1, 2, 5])
        [2, 5]
    """

    def __init__(self, kind: str = "latest", num_versions: int = 1,
                 versions: Sequence[int] = ()):
        if kind not in ("latest", "all", "specific"):
            raise ValueError(f"Unknown version policy {kind!r}.")
        self.kind = kind
        self.num_versions = max(1, int(num_versions))
        self.versions = sorted(set(int(v) for v in versions))

    @classmethod
    def from_proto(cls, policy) -> "VersionPolicy":
        """The policy of a `FileSystemStoragePathSourceConfig.ServableVersionPolicy`."""
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            return cls("all")
        if kind == "specific":
            return cls("specific", versions=policy.specific.versions)
        if kind == "latest":
            return cls("latest", num_versions=policy.latest.num_versions or 1)
        return cls()

    def select(self, on_disk: Sequence[int]) -> List[int]:
        """The versions to serve among `on_disk`, ascending."""
        on_disk = sorted(on_disk)
        if self.kind == "all":
            return on_disk
        if self.kind == "specific":
            return [v for v in on_disk if v in self.versions]
        return on_disk[-self.num_versions:]
