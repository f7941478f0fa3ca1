"""The paper's numbers as data agree with the configs that reproduce its rows."""

import glob
import os

import tensorflow as tf

from tf_t2i.eval import paper_results

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")


def header_rows(path):
    """Every paper row the header of a config states."""
    with open(path) as f:
        found = [paper_results.parse_header_line(line) for line in f]
    return [row for row in found if row is not None]


class PaperResultsTest(tf.test.TestCase):

    def test_each_row_names_an_existing_config(self):
        for row in paper_results.ROWS:
            self.assertTrue(os.path.exists(os.path.join(CONFIGS, f"{row.config}.cfg")), row)
        self.assertLen(paper_results.BY_CONFIG, len(paper_results.ROWS))

    def test_tables_have_the_papers_rows(self):
        by_table = {1: [], 2: []}
        for row in paper_results.ROWS:
            by_table[row.table].append(row)
            self.assertEqual(row.dataset, {1: "cub", 2: "coco"}[row.table])
            self.assertTrue(row.config.startswith(row.dataset + "_"), row)
            self.assertBetween(row.r_precision, 50.0, 100.0)   # percent, not a fraction
        self.assertLen(by_table[1], 9)
        self.assertLen(by_table[2], 5)
        best = paper_results.paper_row("cub_ssagan_cl_r2f_f2f")
        self.assertEqual((best.inception_score, best.fid, best.r_precision),
                         (5.18, 9.12, 72.85))
        self.assertIsNone(paper_results.paper_row("shapes_ssagan"))
        self.assertIsNone(paper_results.paper_row(None))

    def test_every_cub_and_coco_header_states_its_rows_numbers(self):
        paths = sorted(glob.glob(os.path.join(CONFIGS, "cub_*.cfg"))
                       + glob.glob(os.path.join(CONFIGS, "coco_*.cfg")))
        self.assertLen(paths, len(paper_results.ROWS))
        for path in paths:
            name = os.path.splitext(os.path.basename(path))[0]
            expected = paper_results.BY_CONFIG[name]
            self.assertEqual(header_rows(path), [expected._replace(config="")], path)
            with open(path) as f:
                self.assertNotIn("could not be retrieved", f.read(), path)

    def test_header_line_round_trips(self):
        for row in paper_results.ROWS:
            line = paper_results.header_line(row)
            self.assertIn(paper_results.PAPER, line)
            self.assertEqual(paper_results.parse_header_line(line), row._replace(config=""))
        self.assertEqual(paper_results.header_line(paper_results.BY_CONFIG["coco_attngan"]),
                         "# Paper (Table 2, COCO, 'AttnGAN'): IS 6.08, FID 30.67, "
                         "R-precision 83.80% (arXiv:2312.10854).")
        self.assertIsNone(paper_results.parse_header_line("# Paper (Liao et al.): FID 1."))

    def test_shapes_configs_state_no_paper_numbers(self):
        for path in glob.glob(os.path.join(CONFIGS, "shapes_*.cfg")):
            self.assertEqual(header_rows(path), [], path)


if __name__ == "__main__":
    tf.test.main()
