"""`python -m tf_t2i.sample --with_maps`: the sheet it writes is the one the Python API
renders for the same captions and seeds. Its bad flags are in tests/test_bad_input.py."""

import os

import numpy as np
from PIL import Image
import tensorflow as tf

from tests.serving import helpers
from tf_t2i import api

CAPTIONS = ("a large red circle in the center", "a small blue square on the left")


class SampleWithMapsTest(tf.test.TestCase):

    def test_writes_the_api_sheet(self):
        run = helpers.trained_run()
        tmp = self.create_tempdir().full_path
        output = os.path.join(tmp, "maps.png")
        proc = helpers.run_binary("tf_t2i.sample", f"--model_dir={run}", "--with_maps",
                                  *[f"--caption={c}" for c in CAPTIONS], "--seed=3",
                                  f"--output={output}", timeout_s=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertIn("Sampling 1 image(s) with their maps for each of 2 caption(s)",
                      proc.stdout)
        expected = api.TextToImage.from_run(run).save_map_sheet(
            list(CAPTIONS), os.path.join(tmp, "expected.png"), seed=3)
        sheet = np.array(Image.open(output))
        self.assertAllEqual(sheet, np.array(Image.open(expected)))
        # tiny.cfg: 64 px images drawn at 128 px, each beside its 5 masks (one per block).
        self.assertEqual(sheet.shape[1], 180 + 6 * (128 + 4) + 4)


if __name__ == "__main__":
    tf.test.main()
