"""Loads an export the way a stock server would, in a process with nothing but TensorFlow.

  python tests/serving/fresh_process_check.py VERSION_DIR INPUTS.json OUT.npz

Blocks keras, keras_hub, tensorflow_text and tf_t2i before importing TensorFlow, so
the op registry is plain TensorFlow's; then lists every op of the SavedModel (graph and
all function bodies) that the registry lacks, loads it, and runs every signature on
the inputs. Writes the outputs and a report to OUT.npz.
"""

import json
import sys

BLOCKED = ("keras", "tf_keras", "keras_hub", "tensorflow_text", "tf_t2i")
for _name in BLOCKED:
    sys.modules[_name] = None

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
# pylint: enable=g-import-not-at-top,wrong-import-position


def all_ops(version_dir):
    saved_model = saved_model_pb2.SavedModel()
    with open(f"{version_dir}/saved_model.pb", "rb") as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return sorted(ops)


def main(version_dir, inputs_path, out_path):
    with open(inputs_path) as f:
        inputs = json.load(f)
    captions = tf.constant([c.encode("latin-1") for c in inputs["captions"]])
    seeds = tf.constant(inputs["seeds"], tf.int64)
    ops = all_ops(version_dir)
    unregistered = [op for op in ops if op_def_registry.get(op) is None]
    model = tf.saved_model.load(version_dir)
    seeded = model.signatures["serving_default"](captions=captions, seeds=seeds)
    again = model.signatures["serving_default"](captions=captions, seeds=seeds)
    unseeded = model.signatures["generate_unseeded"](captions=captions)
    other = model.signatures["serving_default"](captions=captions, seeds=seeds + 1)
    with_maps = model.signatures["generate_with_maps"](captions=captions, seeds=seeds)
    words = model.signatures["caption_words"](captions=captions)
    report = {"ops": ops, "unregistered": unregistered,
              "signatures": sorted(model.signatures.keys()),
              "blocked_still_blocked": all(sys.modules.get(n) is None for n in BLOCKED),
              "repeat_identical": bool(np.array_equal(seeded["images"], again["images"]))}
    np.savez(out_path, images=seeded["images"].numpy(),
             png_bytes=np.array(seeded["png_bytes"].numpy(), dtype=object),
             unseeded_images=unseeded["images"].numpy(), other_images=other["images"].numpy(),
             maps_images=with_maps["images"].numpy(), maps=with_maps["maps"].numpy(),
             map_labels=np.array(with_maps["map_labels"].numpy(), dtype=object),
             num_words=words["num_words"].numpy(), report=json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:4])
