# ruff: noqa
# Labelled corpus: py-deserialization (pickle, marshal, shelve).
import json
import marshal
import pickle
import shelve
from pickle import loads as unpickle


def restore(blob, path, fh):
    pickle.loads(blob)  # expect[py-deserialization]
    pickle.load(fh)  # expect[py-deserialization]
    unpickle(blob)  # expect[py-deserialization]
    marshal.loads(blob)  # expect[py-deserialization]
    shelve.open(path)  # expect[py-deserialization]
    pickle.dumps(blob)  # ok: writing is not loading
    json.loads(blob)  # ok: JSON is data only
