# ruff: noqa
# Labelled corpus: py-yaml-load.
import yaml
from yaml import SafeLoader


class StrictLoader(yaml.SafeLoader):
    pass


def read(text, stream):
    yaml.load(text)  # expect[py-yaml-load]
    yaml.load(text, Loader=yaml.Loader)  # expect[py-yaml-load]
    yaml.load(text, yaml.UnsafeLoader)  # expect[py-yaml-load]
    yaml.load_all(stream, Loader=yaml.FullLoader)  # expect[py-yaml-load]
    yaml.unsafe_load(text)  # expect[py-yaml-load]
    yaml.safe_load(text)  # ok
    yaml.load(text, Loader=yaml.SafeLoader)  # ok
    yaml.load(text, Loader=SafeLoader)  # ok
    yaml.load(text, Loader=yaml.CSafeLoader)  # ok
    yaml.load(text, Loader=StrictLoader)  # ok: a SafeLoader subclass
