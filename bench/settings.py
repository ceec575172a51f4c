"""Settings for the benchmark server only: the project's settings with the baseline endpoint's URLs added."""

from tvbingx.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
