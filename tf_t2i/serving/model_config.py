"""Served models from a TF Serving --model_config_file (ModelServerConfig text proto)."""

from typing import List

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tf_t2i.serving import servable_manager
from tf_t2i.serving import version_policy


def models_from_config_file(path: str, max_batch_size: int = 64,
                            warmup_iterations: int = 1) -> List[servable_manager.ServedModel]:
    """ServedModels of a TF Serving --model_config_file (ModelServerConfig text proto).

    Relative base paths are taken relative to the current directory (TF Serving wants
    absolute ones; this lets serving/models.config work from the repository root too).

    Args:
        path: the config file.
        max_batch_size: the largest batch a request may carry, for every model.
        warmup_iterations: how many times each warmup record runs at load.

    Returns:
        One ServedModel per `model_config_list` entry, not yet polled.

    Raises:
        ValueError: the config is not a model_config_list, or names a platform other
            than tensorflow.
    """
    config = model_server_config_pb2.ModelServerConfig()
    with open(path) as f:
        text_format.Parse(f.read(), config)
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported.")
    models = []
    for model_config in config.model_config_list.config:
        if model_config.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model_config.name!r} has platform "
                             f"{model_config.model_platform!r}; only 'tensorflow' is served.")
        models.append(servable_manager.ServedModel(
            model_config.name, model_config.base_path,
            version_policy.VersionPolicy.from_proto(model_config.model_version_policy),
            labels=dict(model_config.version_labels), max_batch_size=max_batch_size,
            warmup_iterations=warmup_iterations))
    return models
