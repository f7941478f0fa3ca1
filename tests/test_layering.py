"""Import boundaries of the package, checked on the source (AST) of every module.

Layers, bottom to top; a module may import its own package and the layers below:

  1. `tf_t2i/io/` (file readers, no TensorFlow model code) and `tf_t2i/config.py`;
  2. `models/`, `losses/`, `data/`;
  3. `training/`, `eval/`, `serving/`;
  4. binaries: every other module at the top of `tf_t2i/` (`train.py`, `evaluate.py`,
     ...), with `flags.py`, the only library module that may import `absl.flags`.

Packages of one layer do not import each other, except as `SIDEWAYS` allows: training
runs evaluations (retrieval after DAMSM pretraining, the evaluation callback), so
`training` may import `eval`; nothing in `eval` or `serving` needs the training code.

`tools/` and `benchmarks/` sit above the binaries and are not checked. Imports inside
functions count: a deferred import is still a dependency.
"""

import ast
import glob
import os
from typing import List, NamedTuple, Optional

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tf_t2i"

# Layer of each subpackage, and of the top-level modules that are library code.
PACKAGE_LAYERS = {"io": 1, "models": 2, "losses": 2, "data": 2,
                  "training": 3, "eval": 3, "serving": 3}
LIBRARY_MODULES = {"config": 1, "config_fields": 1, "images": 1}
BINARY_LAYER = 4
# (importing package, imported package) pairs of one layer that may import each other.
# Training runs evaluations; models read token ids, whose padding convention is data's;
# config writes config.json through io's atomic (stdlib-only) file helpers, and builds its
# sections from config_fields.
SIDEWAYS = {("training", "eval"), ("models", "data"), ("config", "io"),
            ("config", "config_fields")}


class Import(NamedTuple):
    """One import statement's target, resolved to a module path under tf_t2i."""
    path: str        # the importing file, relative to the repository root
    line: int
    module: str      # "tf_t2i.training.train_lib"


class Violation(NamedTuple):
    path: str
    line: int
    module: str
    from_layer: int
    to_layer: int

    def __str__(self):
        kind = "a higher layer" if self.to_layer > self.from_layer else "a peer package"
        return (f"{self.path}:{self.line} (layer {self.from_layer}) imports {self.module} "
                f"(layer {self.to_layer}, {kind})")


def module_name(path: str) -> str:
    """"tf_t2i/eval/fid.py" -> "tf_t2i.eval.fid"; packages end at their directory."""
    parts = path[:-len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> Optional[int]:
    """The layer of a module under tf_t2i, or None for the package itself."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) == 1:
        return None
    if parts[1] in PACKAGE_LAYERS:
        return PACKAGE_LAYERS[parts[1]]
    return LIBRARY_MODULES.get(parts[1], BINARY_LAYER)


def _is_module(root: str, module: str) -> bool:
    path = os.path.join(root, *module.split("."))
    return os.path.isdir(path) or os.path.exists(path + ".py")


def imports_of(source: str, path: str, root: str = ROOT) -> List[Import]:
    """Every tf_t2i module that `source` (the file at `root/path`) imports, anywhere in it."""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from tf_t2i.eval import fid` imports tf_t2i.eval.fid; `from
            # tf_t2i.eval.fid import x` imports tf_t2i.eval.fid (x is a name in it).
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(Import(path, node.lineno,
                                    candidate if _is_module(root, candidate) else base))
    return [i for i in found if i.module.split(".")[0] == PACKAGE]


def _package(module: str) -> str:
    return module.split(".")[1]


def upward_imports(source: str, path: str, root: str = ROOT) -> List[Violation]:
    """Imports in `source` (the file at `root/path`) that break the layering.

    An import breaks it when the imported module is of a higher layer, or of the same
    layer but in another package that `SIDEWAYS` does not allow.
    """
    importer = module_name(path)
    own = layer_of(importer)
    out = []
    for imp in imports_of(source, path, root):
        target = layer_of(imp.module)
        if own is None or target is None or target < own:
            continue
        if target == own and (_package(importer) == _package(imp.module) or own == BINARY_LAYER
                              or (_package(importer), _package(imp.module)) in SIDEWAYS):
            continue
        out.append(Violation(path, imp.line, imp.module, own, target))
    return out


def package_files(root: str = ROOT) -> List[str]:
    """Every module of the package, relative to `root` with "/" separators."""
    paths = glob.glob(os.path.join(root, PACKAGE, "**", "*.py"), recursive=True)
    return sorted(os.path.relpath(p, root).replace(os.sep, "/") for p in paths)


def check_tree(root: str = ROOT) -> List[Violation]:
    """Upward imports of the whole package under `root`."""
    out = []
    for path in package_files(root):
        with open(os.path.join(root, path)) as f:
            out += upward_imports(f.read(), path, root)
    return out


class LayeringTest(tf.test.TestCase):

    def test_every_package_has_a_layer(self):
        packages = {p.split("/")[1] for p in package_files() if p.count("/") > 1}
        self.assertEqual(packages - set(PACKAGE_LAYERS), set(),
                         "A new subpackage needs a layer in PACKAGE_LAYERS.")

    def test_no_module_imports_a_higher_layer(self):
        self.assertEqual([str(v) for v in check_tree()], [])

    def test_checker_reports_each_form_of_upward_import(self):
        source = ("import os\n"
                  "from tf_t2i.training import train_lib\n"
                  "import tf_t2i.eval.fid\n"
                  "def f():\n"
                  "    from tf_t2i.serving.export_lib import export\n"
                  "    from .. import train\n")
        found = upward_imports(source, "tf_t2i/models/example.py")
        self.assertEqual([(v.line, v.module, v.from_layer, v.to_layer) for v in found],
                         [(2, "tf_t2i.training.train_lib", 2, 3), (3, "tf_t2i.eval.fid", 2, 3),
                          (5, "tf_t2i.serving.export_lib", 2, 3), (6, "tf_t2i.train", 2, 4)])
        self.assertEqual(str(found[0]), "tf_t2i/models/example.py:2 (layer 2) imports "
                         "tf_t2i.training.train_lib (layer 3, a higher layer)")

    def test_checker_reports_peer_packages_of_a_layer(self):
        source = ("from tf_t2i.training import train_lib\n"
                  "from tf_t2i.eval import fid\n"
                  "from tf_t2i.serving import servable_manager\n")
        found = upward_imports(source, "tf_t2i/serving/example.py")
        self.assertEqual([str(v) for v in found], [
            "tf_t2i/serving/example.py:1 (layer 3) imports tf_t2i.training.train_lib "
            "(layer 3, a peer package)",
            "tf_t2i/serving/example.py:2 (layer 3) imports tf_t2i.eval.fid "
            "(layer 3, a peer package)"])
        self.assertLen(upward_imports("from tf_t2i.models import factory\n",
                                      "tf_t2i/data/example.py"), 1)
        # Training may run evaluations.
        self.assertEqual(upward_imports(source, "tf_t2i/training/example.py")[0].module,
                         "tf_t2i.serving.servable_manager")

    def test_checker_allows_same_and_lower_layers(self):
        source = ("from tf_t2i import config as config_lib\n"
                  "from tf_t2i.io import safe_pickle\n"
                  "from tf_t2i.models import factory\n"
                  "from tf_t2i.data import pipeline\n"
                  "from tf_t2i.eval import fid\n"
                  "from . import gan\n"
                  "import tensorflow as tf\n")
        self.assertEqual(upward_imports(source, "tf_t2i/training/example.py"), [])
        self.assertEqual(upward_imports("from tf_t2i.training import train_lib\n",
                                        "tf_t2i/train.py"), [])
        self.assertLen(upward_imports("from tf_t2i.models import factory\n",
                                      "tf_t2i/io/example.py"), 1)
        self.assertLen(upward_imports("from tf_t2i import train\n", "tf_t2i/config.py"), 1)

    def test_checker_finds_an_upward_import_in_a_tree(self):
        root = self.create_tempdir().full_path
        for path, text in (("tf_t2i/__init__.py", ""), ("tf_t2i/io/__init__.py", ""),
                           ("tf_t2i/io/reader.py", "import numpy\n"),
                           ("tf_t2i/data/__init__.py", ""),
                           ("tf_t2i/data/loader.py", "from tf_t2i.io import reader\n"),
                           ("tf_t2i/io/bad.py", "\n\nfrom tf_t2i.data import loader\n")):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        self.assertEqual([str(v) for v in check_tree(root)],
                         ["tf_t2i/io/bad.py:3 (layer 1) imports tf_t2i.data.loader "
                          "(layer 2, a higher layer)"])


class AbslFlagsBoundaryTest(tf.test.TestCase):

    def test_only_flags_module_and_binaries_import_absl_flags(self):
        offenders = []
        for path in package_files():
            if layer_of(module_name(path)) == BINARY_LAYER:
                continue
            tree = ast.parse(open(os.path.join(ROOT, path)).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "absl":
                    if any(a.name == "flags" for a in node.names):
                        offenders.append(path)
                elif isinstance(node, ast.ImportFrom) and node.module == "absl.flags":
                    offenders.append(path)
                elif isinstance(node, ast.Import) and any(a.name.startswith("absl.flags")
                                                          for a in node.names):
                    offenders.append(path)
        self.assertEqual(offenders, [])
