"""Stable checkpoint keys for the variables of Keras models and optimizers.

A model variable's key is its Keras path (`variable.path`, e.g.
"generator/block0/conv_down/kernel") made independent of whatever else the process
built before:

* relative to its model: the model's own name is dropped ("block0/conv_down/kernel"), so
  a generator restores into an `ema_generator` and a model named `sequential_3` into its
  rebuild named `sequential_5`;
* auto-generated names are numbered again within the model. Keras names an unnamed
  layer or seed generator `<class>_<n>` from a per-process counter (`dense_3`,
  `seed_generator_7`: the numbers depend on what was built first); such a name that is
  unique in the model becomes `<class>`, `<class>_1`, ... in the model's layer order.

An optimizer's slot variable (Keras names it `<reference path with _ for />_<slot>`) is
keyed by the model variable it belongs to, when that model is checkpointed with it:
"<model name>/<model key>/<slot>" ("generator/block0/conv_down/kernel/momentum"). Its
other variables keep their path relative to the optimizer ("iteration", "learning_rate").

Two variables that would get one key raise DuplicateCheckpointKeyError instead of one
silently overwriting the other.
"""

import collections
import re
from typing import Dict, Mapping, Optional, Set, Tuple

import keras
import tensorflow as tf

# What tf.train.Checkpoint appends to the key of a variable it saves.
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class DuplicateCheckpointKeyError(ValueError):
    """Two variables of one checkpoint would be stored under the same key."""


def is_keras(obj) -> bool:
    """Whether `obj` is a Keras layer, model or optimizer (stored as keyed variables)."""
    return isinstance(obj, (keras.layers.Layer, keras.optimizers.Optimizer))


def _snake_case(class_name: str) -> str:
    """The prefix Keras gives the auto-generated names of a class (`LSTMCell` -> lstm_cell)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _named_parts(model: keras.layers.Layer):
    """The model's sub-layers and seed generators, in the model's (code-fixed) order."""
    # `_flatten_layers` and `_seed_generators` are Keras internals (stable through Keras 3):
    # no public API lists a model's nested layers or the seed generators of a layer.
    # pylint: disable=protected-access
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if layer is not model:
            yield layer
        yield from getattr(layer, "_seed_generators", ())
    # pylint: enable=protected-access


def _renumbered_auto_names(model: keras.layers.Layer) -> Dict[str, str]:
    """{auto-generated name in the model: the same name numbered within the model}."""
    parts = list(_named_parts(model))
    counts = collections.Counter(part.name for part in parts)
    renamed, used = {}, collections.Counter()
    for part in parts:
        prefix = _snake_case(type(part).__name__)
        # A name used twice was given by the code (Keras' counter never repeats one).
        if counts[part.name] != 1 or not re.fullmatch(re.escape(prefix) + r"(_\d+)?", part.name):
            continue
        number = used[prefix]
        used[prefix] += 1
        renamed[part.name] = prefix if number == 0 else f"{prefix}_{number}"
    return renamed


def _relative_path(variable, owner_name: str) -> list:
    parts = variable.path.split("/")
    return parts[1:] if len(parts) > 1 and parts[0] == owner_name else parts


def _add(keyed: Dict[str, tf.Variable], key: str, variable, where: str) -> None:
    if key in keyed:
        raise DuplicateCheckpointKeyError(
            f"Two variables of {where} have the checkpoint key {key!r} (Keras paths "
            f"{keyed[key].path!r} and {variable.path!r}): give their layers distinct names.")
    keyed[key] = variable


def model_keys(model: keras.layers.Layer, where: Optional[str] = None) -> Dict[str, tf.Variable]:
    """Every variable of a built Keras layer or model, keyed as the module docstring says."""
    where = where or model.name
    renamed = _renumbered_auto_names(model)
    keyed = {}
    for variable in model.variables:
        *scopes, name = _relative_path(variable, model.name)
        _add(keyed, "/".join([renamed.get(s, s) for s in scopes] + [name]), variable, where)
    return keyed


def _slot_references(models: Mapping[str, Dict[str, tf.Variable]]) -> Dict[str, Optional[str]]:
    """{model variable path with "/" as "_": its "<model name>/<key>", None if ambiguous}."""
    references = {}
    for name, keyed in models.items():
        for key, variable in keyed.items():
            flat = variable.path.replace("/", "_")
            references[flat] = None if flat in references else f"{name}/{key}"
    return references


def optimizer_keys(optimizer: keras.optimizers.Optimizer,
                   models: Mapping[str, Dict[str, tf.Variable]],
                   where: Optional[str] = None) -> Dict[str, tf.Variable]:
    """Every variable of a built optimizer; slots keyed by their variable in `models`.

    Args:
      optimizer: the optimizer.
      models: {checkpoint name: model_keys(model)} of the models checkpointed with it.
      where: the optimizer's name in the checkpoint (for error messages).
    """
    where = where or optimizer.name
    references = _slot_references(models)
    keyed = {}
    for variable in optimizer.variables:
        relative = "/".join(_relative_path(variable, optimizer.name))
        key = relative
        # The longest "<reference>_" prefix: a slot name ends with "_<slot>".
        for cut in reversed([m.start() for m in re.finditer("_", relative)]):
            reference = relative[:cut]
            if reference in references:
                if references[reference] is None:
                    raise DuplicateCheckpointKeyError(
                        f"The slot {variable.path!r} of {where} belongs to one of several "
                        f"model variables whose paths all read {reference!r}: give their "
                        "layers distinct names.")
                key = f"{references[reference]}/{relative[cut + 1:]}"
                break
        _add(keyed, key, variable, where)
    return keyed


def keyed_variables(objects: Mapping[str, object]) -> Dict[str, Dict[str, tf.Variable]]:
    """{checkpoint name: {key: variable}} for the Keras objects among `objects`.

    Models first, so that each optimizer's slots find the model variables they belong to.
    """
    keyed = {name: model_keys(obj, name) for name, obj in objects.items()
             if isinstance(obj, keras.layers.Layer)}
    models = dict(keyed)
    for name, obj in objects.items():
        if isinstance(obj, keras.optimizers.Optimizer):
            keyed[name] = optimizer_keys(obj, models, name)
    return {name: keyed[name] for name in objects if name in keyed}


def nest(keyed: Mapping[str, tf.Variable], where: str = "") -> dict:
    """{"a/b/c": v} -> {"a": {"b": {"c": v}}}: tf.train.Checkpoint then saves "a/b/c"."""
    root = {}
    for key, variable in keyed.items():
        *scopes, leaf = key.split("/")
        node = root
        for scope in scopes:
            node = node.setdefault(scope, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or leaf in node:
            raise DuplicateCheckpointKeyError(
                f"The checkpoint key {key!r} of {where} is both a variable and the scope "
                "of other variables: give their layers distinct names.")
        node[leaf] = variable
    return root


def _unescape(name: str) -> str:
    # tf.train.Checkpoint writes "." in a name as ".." and "/" as ".S".
    return re.sub(r"\.([.S])", lambda m: "." if m.group(1) == "." else "/", name)


def saved_keys(path: str) -> Set[str]:
    """The "<name>/<key>" of every variable saved in a checkpoint."""
    return {_unescape(name[:-len(_VALUE_SUFFIX)]) for name, _ in tf.train.list_variables(path)
            if name.endswith(_VALUE_SUFFIX)}


def saved_value(path: str, key: str) -> Tuple[bool, object]:
    """(whether the checkpoint has the variable "<name>/<key>", its value or None)."""
    reader = tf.train.load_checkpoint(path)
    name = key + _VALUE_SUFFIX
    return (True, reader.get_tensor(name)) if reader.has_tensor(name) else (False, None)
