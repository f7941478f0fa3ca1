"""The server core in-process: version policies and polling (version_policy,
servable_manager), warmup replay (warmup), status reporting, typed-field encoding
(servable_version), and models.config files (model_config)."""

import os
import shutil
import threading

from absl.testing import parameterized
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tests.serving import helpers
from tf_t2i.serving import errors
from tf_t2i.serving import model_config
from tf_t2i.serving import servable_manager
from tf_t2i.serving import servable_version
from tf_t2i.serving import version_policy
from tf_t2i.serving import warmup

State = get_model_status_pb2.ModelVersionStatus.State


def _status_request(name="t2i", version=None, label=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


class PolicyAndEncodingTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.parameters(
        (version_policy.VersionPolicy(), [1, 2, 5], [5]),
        (version_policy.VersionPolicy("latest", num_versions=2), [1, 2, 5], [2, 5]),
        (version_policy.VersionPolicy("all"), [3, 1], [1, 3]),
        (version_policy.VersionPolicy("specific", versions=[2, 9]), [1, 2, 5], [2]),
        (version_policy.VersionPolicy(), [], []),
    )
    def test_policy_selects(self, policy, on_disk, expected):
        self.assertEqual(policy.select(on_disk), expected)

    @parameterized.parameters(np.uint8, np.int32, np.int64, np.float32)
    def test_typed_fields_round_trip(self, dtype):
        array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
        proto = servable_version.tensor_to_proto(array)
        self.assertEqual(proto.tensor_content, b"")
        self.assertAllEqual(tf.make_ndarray(proto), array)
        self.assertEqual(tf.make_ndarray(proto).dtype, dtype)
        packed = servable_version.tensor_to_proto(array, as_tensor_content=True)
        self.assertNotEmpty(packed.tensor_content)
        self.assertAllEqual(tf.make_ndarray(packed), array)

    def test_strings_round_trip(self):
        array = np.array([b"\x89PNG\x00\xff", b""], dtype=object)
        proto = servable_version.tensor_to_proto(array)
        self.assertEqual(list(proto.string_val), list(array))
        self.assertEqual(list(tf.make_ndarray(proto)), list(array))

    def test_models_config_file_of_the_deployment(self):
        path = os.path.join(helpers.ROOT, "serving", "models.config")
        (model,) = model_config.models_from_config_file(path)
        self.assertEqual(model.name, "t2i")
        self.assertEqual(model.base_path, "/models/t2i")
        self.assertEqual(model.policy.kind, "specific")
        self.assertIn("stable", model.labels)
        self.assertIn(model.labels["stable"], model.policy.versions)


class ServedModelTest(tf.test.TestCase):
    """Versions of the tiny export, loaded in this process."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.version_dir = helpers.exported()["version_dir"]

    def test_latest_policy_loads_new_versions_and_unloads_old_ones(self):
        base = self.create_tempdir().full_path
        os.symlink(self.version_dir, os.path.join(base, "1"))
        os.makedirs(os.path.join(base, ".tmp-export-3-x"))  # being written: invisible
        model = servable_manager.ServedModel("t2i", base, labels={})
        manager = servable_manager.ServableManager([model])
        self.assertEqual(manager.poll(), [])
        self.assertEqual(sorted(model.available()), [1])
        os.symlink(self.version_dir, os.path.join(base, "3"))
        self.assertEqual(manager.poll(), [])
        self.assertEqual(sorted(model.available()), [3])
        response = manager.get_model_status(_status_request())
        self.assertEqual([(s.version, s.state) for s in response.model_version_status],
                         [(1, State.END), (3, State.AVAILABLE)])
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "t2i"
        self.assertEqual(manager.resolve(request.model_spec).version, 3)
        request.model_spec.version.value = 1
        with self.assertRaisesRegex(errors.ServingError, r"Specific\(t2i, 1\)"):
            manager.resolve(request.model_spec)
        with self.assertRaisesRegex(errors.ServingError, "Could not find version 2 of model"):
            manager.get_model_status(_status_request(version=2))

    def test_failing_warmup_fails_the_load(self):
        base = self.create_tempdir().full_path
        version_dir = os.path.join(base, "4")
        shutil.copytree(self.version_dir, version_dir)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "t2i"
        request.inputs["captions"].CopyFrom(tf.make_tensor_proto([b"a"], dtype=tf.string))
        request.inputs["seeds"].CopyFrom(tf.make_tensor_proto([1], dtype=tf.int32))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request))
        with tf.io.TFRecordWriter(os.path.join(version_dir, warmup.WARMUP_PATH)) as writer:
            writer.write(log.SerializeToString())
        model = servable_manager.ServedModel("t2i", base)
        manager = servable_manager.ServableManager([model])
        (error,) = manager.poll()
        self.assertEqual(error.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(model.available(), {})
        (status,) = manager.get_model_status(_status_request()).model_version_status
        self.assertEqual(status.state, State.END)
        self.assertEqual(status.status.error_code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        self.assertIn("Expects arg[1] to be int64 but int32 is provided",
                      status.status.error_message)
        self.assertEqual(manager.poll(), [])  # not retried until its files change

    def test_label_must_name_an_available_version(self):
        base = self.create_tempdir().full_path
        os.symlink(self.version_dir, os.path.join(base, "1"))
        manager = servable_manager.ServableManager(
            [servable_manager.ServedModel("t2i", base, labels={"stable": 1, "canary": 2})])
        manager.poll()
        with self.assertRaisesRegex(errors.ServingError,
                                    "assign label to version 2 of model t2i"):
            manager.check_labels()
        (status,) = manager.get_model_status(_status_request(label="stable")).model_version_status
        self.assertEqual((status.version, status.state), (1, State.AVAILABLE))


def _predict_request(name="t2i"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["captions"].CopyFrom(tf.make_tensor_proto([b"a red circle"], dtype=tf.string))
    request.inputs["seeds"].CopyFrom(tf.make_tensor_proto([3], dtype=tf.int64))
    return request


class _Requests:
    """Predict requests on the latest version, sent without pause from a thread."""

    def __init__(self, manager, name="t2i"):
        self.manager, self.name = manager, name
        self.versions, self.failures = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                response = self.manager.predict(_predict_request(self.name), max_batch_size=8)
                self.versions.append(response.model_spec.version.value)
            except errors.ServingError as e:
                self.failures.append(e)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        return self


def _wrong_signature_export(path):
    """A loadable SavedModel whose serving signature lost the `seeds` input."""
    module = tf.Module()
    module.f = tf.function(lambda captions: {"images": tf.zeros([tf.size(captions), 4, 4, 3],
                                                                tf.uint8)},
                           input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, path, signatures={"serving_default": module.f})


def _break(kind, good_dir, path):
    """Writes a broken version directory of the given kind at `path`."""
    if kind == "wrong_signature":
        _wrong_signature_export(path)
        return
    shutil.copytree(good_dir, path)
    if kind == "empty_saved_model_pb":
        open(os.path.join(path, "saved_model.pb"), "wb").close()
    elif kind == "truncated_variables":
        (data,) = [os.path.join(path, "variables", n) for n in os.listdir(
            os.path.join(path, "variables")) if n.startswith("variables.data")]
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    elif kind == "no_saved_model_pb":
        os.remove(os.path.join(path, "saved_model.pb"))
    else:
        raise ValueError(kind)


class AvailabilityTest(parameterized.TestCase, tf.test.TestCase):
    """A new version that fails to load never takes the served one offline."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.version_dir = helpers.exported()["version_dir"]

    def _serving_v1(self, name="t2i"):
        base = self.create_tempdir().full_path
        shutil.copytree(self.version_dir, os.path.join(base, "1"))
        model = servable_manager.ServedModel(name, base)
        return base, model

    @parameterized.parameters("empty_saved_model_pb", "truncated_variables", "wrong_signature",
                              "no_saved_model_pb")
    def test_broken_new_version_leaves_the_old_one_serving(self, kind):
        base, model = self._serving_v1()
        manager = servable_manager.ServableManager([model])
        self.assertEqual(manager.poll(), [])
        requests = _Requests(manager)
        _break(kind, self.version_dir, os.path.join(base, "2"))
        (error,) = manager.poll()
        self.assertEqual(sorted(model.available()), [1])
        self.assertEqual(manager.poll(), [])  # the same broken files are not tried again
        statuses = {s.version: s for s in
                    manager.get_model_status(_status_request()).model_version_status}
        self.assertEqual(statuses[1].state, State.AVAILABLE)
        self.assertEqual(statuses[2].state, State.END)
        self.assertEqual(statuses[2].status.error_message, error.message)
        if kind == "wrong_signature":
            self.assertIn('version 2 does not keep the signatures of version 1: signature '
                          '"serving_default" has no input "seeds"', error.message)
        shutil.rmtree(os.path.join(base, "2"))
        self.assertEqual(manager.poll(), [])
        self.assertEqual(sorted(model.available()), [1])
        requests.stop()
        self.assertEqual(requests.failures, [])
        self.assertNotEmpty(requests.versions)
        self.assertEqual(set(requests.versions), {1})

    def test_version_copied_in_two_steps_loads_once_complete(self):
        base, model = self._serving_v1()
        manager = servable_manager.ServableManager([model])
        manager.poll()
        requests = _Requests(manager)
        new = os.path.join(base, "2")
        os.makedirs(new)  # a copy under way: the graph first, the variables later
        shutil.copy(os.path.join(self.version_dir, "saved_model.pb"), new)
        self.assertLen(manager.poll(), 1)
        self.assertEqual(sorted(model.available()), [1])
        shutil.copytree(self.version_dir, new, dirs_exist_ok=True)
        self.assertEqual(manager.poll(), [])
        self.assertEqual(sorted(model.available()), [2])
        count = len(requests.versions)
        helpers.wait_for(lambda: len(requests.versions) > count + 2, timeout_s=60)
        requests.stop()
        self.assertEqual(requests.failures, [])
        self.assertEqual(requests.versions[-1], 2)
        switch = requests.versions.index(2)
        self.assertEqual(set(requests.versions[:switch]), {1})
        self.assertEqual(set(requests.versions[switch:]), {2})

    def test_unloaded_version_loads_again_when_the_newer_one_is_removed(self):
        base, model = self._serving_v1()
        manager = servable_manager.ServableManager([model])
        manager.poll()
        os.symlink(self.version_dir, os.path.join(base, "2"))
        manager.poll()
        self.assertEqual(sorted(model.available()), [2])
        os.remove(os.path.join(base, "2"))
        self.assertEqual(manager.poll(), [])
        self.assertEqual(sorted(model.available()), [1])

    def test_one_models_broken_version_leaves_the_others_alone(self):
        base_a, model_a = self._serving_v1("a")
        base_b, model_b = self._serving_v1("b")
        manager = servable_manager.ServableManager([model_a, model_b])
        manager.poll()
        requests = [_Requests(manager, "a"), _Requests(manager, "b")]
        _break("truncated_variables", self.version_dir, os.path.join(base_a, "2"))
        os.symlink(self.version_dir, os.path.join(base_b, "2"))
        self.assertLen(manager.poll(), 1)
        self.assertEqual(sorted(model_a.available()), [1])
        self.assertEqual(sorted(model_b.available()), [2])
        for r in requests:
            r.stop()
            self.assertEqual(r.failures, [])
