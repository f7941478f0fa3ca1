"""The page of `tf_t2i.serve --ui_port` in a real headless Chromium, on the tiny export.

Debian's `chromium` and `chromium-driver` driven through Selenium (`make test` installs
them, and nginx-light, where it can: root and apt). One server (gRPC + REST + page,
batch limit 8) and one browser session serve every test. A user's steps: type a
caption, choose the number of images and the seed, press Generate, wait for the images;
each image's seed shown under it reproduces it through the gRPC client. Error lines: an
empty caption, unknown words, more images than the batch limit, a model server that is
down. With nginx installed, the same page as plain files behind serving/nginx.conf
(docker-compose.yml's proxy) in front of the REST API. A screenshot of the page goes
to test-artifacts/ui_page.png.
"""

import base64
import http.client
import io
import os
import shutil
import socket
import subprocess
import tempfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from tests.serving import helpers
from tf_t2i.serving import client as client_lib
from tf_t2i.serving import ui_server

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the dev extras are not installed
    webdriver = None

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = os.path.join(helpers.ROOT, "test-artifacts")
IMAGE_SIZE = 64  # configs/tiny.cfg
BATCH_LIMIT = 8  # the warmup records (batches of 1 and 8) must fit
# Generation on a busy 2-core machine; a page load.
GENERATE_TIMEOUT_S = 120
LOAD_TIMEOUT_S = 60
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1100,900")


def _skip_reason():
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not CHROMIUM or not CHROMEDRIVER:
        return ("no chromium / chromedriver on PATH (apt-get install chromium chromium-driver; "
                "`make test` does it when run as root)")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(user_data_dir: str):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(LOAD_TIMEOUT_S)
    return driver


@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
class PageInBrowserTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        exported = helpers.exported()
        cls.server = helpers.ServerProcess(f"--model_base={exported['base']}",
                                           f"--max_batch_size={BATCH_LIMIT}", rest=True,
                                           page=True)
        cls.profile = tempfile.mkdtemp(prefix="tf_t2i_chromium_")
        cls.driver = None
        try:
            cls.driver = _chromium(cls.profile)  # starts while the server loads
            cls.server.wait_ready()
            cls.client = client_lib.GrpcClient(f"127.0.0.1:{cls.server.port}", "t2i")
            cls.signatures = cls.client.signature_defs()
        except Exception:
            # tearDownClass does not run after a failed setUpClass: nothing may be left.
            if cls.driver is not None:
                cls.driver.quit()
            cls.server.stop()
            shutil.rmtree(cls.profile, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.client.close()
        code = cls.server.stop()
        shutil.rmtree(cls.profile, ignore_errors=True)
        super().tearDownClass()
        assert code == 0, f"server exited with {code}:\n{cls.server.output[-3000:]}"

    # --- What a user does. -------------------------------------------------------------
    def _open(self, url=None):
        self.driver.get(url or self.server.page_url)
        WebDriverWait(self.driver, LOAD_TIMEOUT_S).until(
            lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))

    def _type(self, element_id, text):
        element = self.driver.find_element(By.ID, element_id)
        element.clear()
        element.send_keys(text)

    def _generate(self, caption, count=None, seed=None):
        self._type("caption", caption)
        if count is not None:
            self._type("count", str(count))
        if seed is not None:
            self._type("seed", str(seed))
        self.driver.execute_script("document.getElementById('message').textContent = '';")
        self.driver.find_element(By.ID, "generate").click()

    def _message(self, timeout_s=GENERATE_TIMEOUT_S):
        """(text, kind) of the message line once the page is done with the request."""
        WebDriverWait(self.driver, timeout_s).until(lambda d: d.execute_script(
            "const m = document.getElementById('message');"
            "return document.body.dataset.busy !== 'true' && m.textContent !== '' &&"
            "       !m.textContent.startsWith('Generating');"))
        box = self.driver.find_element(By.ID, "message")
        return box.text, box.get_attribute("data-kind")

    def _images(self):
        """[(naturalWidth, naturalHeight, src, seed text, download name, href)] shown."""
        return self.driver.execute_script("""
            return [...document.querySelectorAll('#results .result')].map(f => {
              const img = f.querySelector('.result-image'), a = f.querySelector('.download');
              return [img.complete ? img.naturalWidth : 0, img.naturalHeight, img.src,
                      f.querySelector('.seed').textContent, a.download, a.href];
            });""")

    def _visible(self, element_id):
        return self.driver.find_element(By.ID, element_id).is_displayed()

    # --- Tests. ------------------------------------------------------------------------
    def test_images_appear_and_their_seeds_reproduce_them_through_grpc(self):
        self._open()
        self.assertIn("version 1", self.driver.find_element(By.ID, "model-info").text)
        self.assertIn(f"up to {BATCH_LIMIT} images", self.driver.find_element(
            By.ID, "model-info").text)
        # The exports take no truncation input: the control stays hidden.
        self.assertNotIn("truncation", self.signatures["serving_default"].inputs)
        self.assertFalse(self._visible("truncation-control"))
        self.assertEqual(self._visible("maps-control"), "generate_with_maps" in self.signatures)
        caption = "a large red circle in the center"
        self._generate(caption, count=3, seed=1000)
        text, kind = self._message()
        self.assertEqual((text, kind), ("3 images, seeds 1000\u20131002.", "info"))
        WebDriverWait(self.driver, 30).until(
            lambda d: len([i for i in self._images() if i[0] > 0]) == 3)
        shown = self._images()
        self.assertEqual([(w, h) for w, h, *_ in shown], [(IMAGE_SIZE, IMAGE_SIZE)] * 3)
        self.assertEqual([s[3] for s in shown], ["seed 1000", "seed 1001", "seed 1002"])
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.driver.save_screenshot(os.path.join(ARTIFACTS, "ui_page.png"))

        # The second image, as the page got it, against the gRPC client with its seed.
        _, _, src, seed_text, download_name, href = shown[1]
        prefix = "data:image/png;base64,"
        self.assertStartsWith(src, prefix)
        page_png = base64.b64decode(src[len(prefix):])
        page_pixels = np.array(Image.open(io.BytesIO(page_png)).convert("RGB"))
        seed = int(seed_text.split()[-1])
        grpc_pixels = self.client.generate([caption], [seed])[0]
        self.assertAllEqual(page_pixels, grpc_pixels)
        self.assertNotAllEqual(page_pixels, self.client.generate([caption], [seed + 1])[0])
        # The download is that PNG, named after the caption and the seed.
        self.assertEqual(href, src)
        self.assertEqual(download_name, "t2i_a_large_red_circle_in_the_center_seed1001.png")

    def test_an_empty_caption_is_refused_on_the_page(self):
        self._open()
        self._generate("  ,. ")
        self.assertEqual(self._message(timeout_s=10),
                         ("Type a caption first: it needs at least one word.", "error"))
        self.assertEqual(self._images(), [])

    def test_unknown_words_are_named(self):
        if "caption_words" not in self.signatures:
            self.skipTest("the export has no caption_words signature")
        self._open()
        self._generate("a red zebra circle and a quokka", count=1, seed=3)
        text, kind = self._message()
        self.assertEqual(kind, "warning", text)
        self.assertStartsWith(text, "Words the model does not know (read as unknown): ")
        named = text.split(": ", 1)[1].split(". ")[0].split(", ")
        self.assertCountEqual(named, ["zebra", "quokka"])
        unknown_chips = [c.text for c in self.driver.find_elements(
            By.CSS_SELECTOR, "#caption-words .chip.unknown")]
        self.assertCountEqual(unknown_chips, ["zebra", "quokka"])
        self.assertLen(self._images(), 1)  # generated anyway, with the warning

    def test_more_images_than_the_batch_limit(self):
        self._open()
        # The page knows the limit (ui-config.json): it says so and sets the number.
        self._generate("a blue square", count=BATCH_LIMIT + 1, seed=0)
        self.assertEqual(self._message(timeout_s=10),
                         (f"At most {BATCH_LIMIT} images per request (the server's batch "
                          f"limit): set to {BATCH_LIMIT}.", "error"))
        self.assertEqual(self.driver.find_element(By.ID, "count").get_attribute("value"),
                         str(BATCH_LIMIT))
        # A page that does not know it (no ui-config.json) shows the server's refusal.
        self.driver.execute_script("document.getElementById('count').removeAttribute('max');")
        self._generate("a blue square", count=BATCH_LIMIT + 1, seed=0)
        text, kind = self._message()
        self.assertEqual(kind, "error")
        self.assertStartsWith(text, f"Too many images for one request: the server takes at "
                                    f"most {BATCH_LIMIT}. (Task size {BATCH_LIMIT + 1} is larger")

    def test_a_model_server_that_is_down(self):
        # The page's own server up, the model server behind it down (a proxy's 502) ...
        dead = ui_server.UIServer(("127.0.0.1", _free_port()), ui_server.ui_config("t2i", 4))
        dead.start()
        try:
            self._open(dead.url)
            self.assertEqual(self.driver.find_element(By.ID, "model-info").text,
                             "Not connected to a model.")
            self._generate("a red circle", count=1, seed=0)
            text, kind = self._message()
            self.assertEqual(kind, "error")
            self.assertStartsWith(text, "Cannot reach the model server: is it running? "
                                        "(The model server at 127.0.0.1:")
        finally:
            dead.stop()
        # ... and no server at all any more: the request itself fails.
        self._generate("a red circle", count=1, seed=0)
        text, kind = self._message()
        self.assertEqual(kind, "error")
        self.assertStartsWith(text, "Cannot reach the model server: is it running? (")

    def test_maps_under_each_image(self):
        if "generate_with_maps" not in self.signatures:
            self.skipTest("the export has no generate_with_maps signature")
        outputs = self.signatures["generate_with_maps"].outputs
        self.assertContainsSubset({"map_png_bytes", "map_labels", "map_words"}, outputs)
        self._open()
        self.driver.find_element(By.ID, "show-maps").click()
        self._generate("a green triangle at the top", count=2, seed=5)
        text, kind = self._message()
        self.assertEqual(kind, "info", text)
        expected = self.client.predict(
            {"captions": np.array([b"a green triangle at the top"] * 2, dtype=object),
             "seeds": np.array([5, 6], np.int64)}, "generate_with_maps",
            output_filter=["map_png_bytes", "map_labels", "map_words"])
        # A map's title is its label, and its word when it has one; padding is not shown.
        titles = [label.decode() + (f" ({word.decode()})" if word else "")
                  for label, word in zip(expected["map_labels"][0], expected["map_words"][0])
                  if not label.decode().endswith("(padding)")]
        figures = self.driver.find_elements(By.CSS_SELECTOR, "#results .result")
        self.assertLen(figures, 2)
        for figure in figures:
            thumbs = figure.find_elements(By.CSS_SELECTOR, ".map-thumb")
            self.assertEqual([t.get_attribute("title") for t in thumbs], titles)
        # The first map of the second image, as sent, and laid over it on hover.
        thumb = figures[1].find_elements(By.CSS_SELECTOR, ".map-thumb")[0]
        prefix = "data:image/png;base64,"
        self.assertEqual(base64.b64decode(thumb.get_attribute("src")[len(prefix):]),
                         expected["map_png_bytes"][1][0])
        overlay = figures[1].find_element(By.CSS_SELECTOR, ".overlay")
        self.assertFalse(overlay.is_displayed())
        ActionChains(self.driver).move_to_element(thumb).perform()
        self.assertTrue(overlay.is_displayed())
        self.assertEqual(overlay.get_attribute("src"), thumb.get_attribute("src"))


    def test_plain_files_behind_the_compose_nginx_config(self):
        if not NGINX:
            self.skipTest("nginx is not installed (apt-get install nginx-light; `make test` "
                          "does it when run as root)")
        port = _free_port()
        directory = tempfile.mkdtemp(prefix="tf_t2i_nginx_")
        with open(os.path.join(helpers.ROOT, "serving", "nginx.conf")) as f:
            server_block = f.read()
        # Only the deployment's names change: its port, mount points and upstream.
        for old, new in (("listen 8080;", f"listen 127.0.0.1:{port};"),
                         ("/usr/share/nginx/t2i-ui", ui_server.UI_DIR),
                         ("/etc/t2i-ui/ui-config.json",
                          os.path.join(helpers.ROOT, "serving", "ui-config.json")),
                         ("http://tf-serving:8501", f"http://127.0.0.1:{self.server.rest_port}")):
            self.assertEqual(server_block.count(old), 1, old)
            server_block = server_block.replace(old, new)
        temp_paths = " ".join(f"{kind}_temp_path {directory}/{kind};" for kind in
                              ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        config = os.path.join(directory, "nginx.conf")
        with open(config, "w") as f:
            # What the nginx image's own nginx.conf provides around conf.d/default.conf.
            f.write(f"{'user root;' if os.geteuid() == 0 else ''} daemon off; "
                    f"pid {directory}/nginx.pid; error_log {directory}/error.log; "
                    "events {} http { access_log off; "
                    "types { text/html html; text/css css; text/javascript js; "
                    f"application/json json; }} {temp_paths}\n{server_block}\n}}\n")
        proc = subprocess.Popen([NGINX, "-c", config, "-p", directory],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            if not helpers.wait_for(lambda: _status(url) == 200, 30):
                log = os.path.join(directory, "error.log")
                self.fail("nginx did not answer: " + (open(log).read()[-2000:]
                                                      if os.path.exists(log) else "no log"))
            self.assertEqual(_status(url + "setup.py"), 404)
            self.assertIn(_status(url + "../setup.py"), (400, 404))  # nginx: 400
            self.assertEqual(_status(url + "monitoring/prometheus/metrics"), 404)
            self._open(url)
            self.assertIn("version 1", self.driver.find_element(By.ID, "model-info").text)
            self._generate("a small blue square on the left", count=2, seed=77)
            text, kind = self._message()
            self.assertEqual((text, kind), ("2 images, seeds 77\u201378.", "info"))
            _, _, src, seed_text, _, _ = self._images()[1]
            page_png = base64.b64decode(src.split(",", 1)[1])
            self.assertEqual(seed_text, "seed 78")
            self.assertAllEqual(np.array(Image.open(io.BytesIO(page_png)).convert("RGB")),
                                self.client.generate(["a small blue square on the left"],
                                                     [78])[0])
        finally:
            proc.terminate()
            proc.wait(15)
            shutil.rmtree(directory, ignore_errors=True)


def _status(url: str) -> int:
    """The HTTP status of GET url, the path sent as written; 0 when nothing answers."""
    host_port, path = url[len("http://"):].split("/", 1)
    connection = http.client.HTTPConnection(*host_port.split(":"), timeout=10)
    try:
        connection.request("GET", "/" + path)
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()
