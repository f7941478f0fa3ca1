"""tf_t2i: text-to-image GANs with distribution-sensitive losses (Keras 3 / TF 2)."""
from setuptools import find_packages, setup

# Pinned with lower and upper bounds: TF and TF Serving move in lock step, and
# Keras 3 comes with TensorFlow 2.21. tensorflow-addons is deliberately absent:
# it is end-of-life and fails to import on TF >= 2.16 (README, "Dependencies").
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "tensorflow-serving-api==2.21.*",
    "tensorflow-datasets>=4.9.7,<5",
    "keras>=3.12,<4",
    "keras-hub>=0.30,<1",
    "tensorboard>=2.20,<3",
    "importlib_resources>=6,<7",  # needed by tensorflow-datasets to prepare builders
    "absl-py>=2.1,<3",
    "numpy>=1.26,<3",
    "scipy>=1.13,<2",
    "pillow>=10,<13",
    "grpcio>=1.60,<2",
]

DEV_REQUIRES = [
    "pytest>=8,<10",
    "pytest-timeout>=2.3,<3",
    # `make test` runs the suite on every core, a test class per worker (--dist loadscope),
    # so that each class's shared tiny run is built once: 10.6-12.4 minutes of pytest on 2
    # cores against 16.2 in one process.
    "pytest-xdist>=3.6,<4",
    "dill>=0.3,<1",  # tfds.testing.DatasetBuilderTestCase
    "matplotlib>=3.8,<4",  # tools/plot_training.py (learning curves in docs/)
    # CPU wheel (on this machine's disk): runs the TorchScript FID Inception model in the
    # Keras port's parity test. tf_t2i itself never imports torch. Pinned: an unpinned
    # torch pulls several GB of CUDA.
    "torch==2.13.0",
    # Drives the system's Chromium (Debian's chromium + chromium-driver, which `make test`
    # installs where it can) in the page's browser test, tests/serving/test_ui_browser.py.
    # 4.51: 4.52 needs a certifi newer than the package index here offers.
    "selenium==4.51.0",
]

setup(
    name="tf_t2i",
    version="0.1.0",
    description="Text-to-image GANs (SSA-GAN, Style-AttnGAN) with contrastive and "
                "re-captioning losses, in Keras 3 / TensorFlow 2",
    packages=find_packages(include=["tf_t2i", "tf_t2i.*"]),
    python_requires=">=3.10,<3.14",
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": DEV_REQUIRES},
    include_package_data=True,
    # The tiny CUB / COCO trees the TFDS builder tests read (tfds.testing); the page of
    # `tf_t2i.serve --ui_port` (read by tf_t2i/serving/ui_server.py).
    package_data={"tf_t2i.data": ["dummy_data/**/*"], "tf_t2i.serving": ["ui/*"]},
)
