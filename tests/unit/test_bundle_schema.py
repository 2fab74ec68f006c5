"""Bundles are checked against their schema before any viewer sees them, without trusting their checksums: each
case below changes a real bundle and then rewrites every size and checksum, as whoever changed the files could.
Numeric dtypes only, shapes that agree with the image and map counts (a declared 1e12 is refused without
allocating), every array declared, field types, and no file that resolves outside the bundle."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_set

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle written from a result computed now with the real offline network (read-only: tests copy it)."""
    from aisviz.pipeline.bundles import write_bundle
    from aisviz.pipeline.compute import compute_result

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AISVIZ_HOME", str(tmp_path_factory.mktemp("home")))
        ds = make_tiny_set(n=10, size=40, seed=3)
        result = compute_result(dataset=ds, provider="center_bias", n_folds=2, n_seeds=1, k_step=256, progress=False)
    root = tmp_path_factory.mktemp("bundle") / "b"
    entry = write_bundle(result, root)
    return root, entry.id


def _copy(bundle, tmp_path) -> tuple[Path, str]:
    root, sid = bundle
    return Path(shutil.copytree(root, tmp_path / "b", symlinks=True)), sid


def _reseal(root: Path):
    """Rewrite every size and checksum of the bundle so that they match the files again."""
    from aisviz.io.storage import sha256_file

    index = json.loads((root / "bundle.json").read_text())
    for e in index["settings"]:
        path = root / e["id"] / "manifest.json"
        m = json.loads(path.read_text())
        if isinstance(m.get("files"), dict):
            for name in m["files"]:
                f = root / e["id"] / name
                if f.is_file():
                    m["files"][name] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
        path.write_text(json.dumps(m))
        e["manifest_sha256"] = sha256_file(path)
    (root / "bundle.json").write_text(json.dumps(index))


def _manifest(root, sid, change):
    path = root / sid / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def _sizes(root, sid):
    fields = json.loads((root / sid / "manifest.json").read_text())["fields"]
    return len(fields["image_names"]), len(fields["map_names"])


def _object_dtype(root, sid):
    n, c = _sizes(root, sid)
    np.save(root / sid / "arrays" / "ais.npy", np.array([{"x": 1}] * c, dtype=object), allow_pickle=True)


def _huge_shape(root, sid):
    n, c = _sizes(root, sid)
    with open(root / sid / "arrays" / "activations.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (n, c, 10**6, 10**6)})
        f.write(b"\0" * 4096)


def _complex_dtype(root, sid):
    n, _ = _sizes(root, sid)
    np.save(root / sid / "arrays" / "r_orig.npy", np.zeros(n, dtype=np.complex128))


def _structured_dtype(root, sid):
    n, _ = _sizes(root, sid)
    np.save(root / sid / "arrays" / "r_orig.npy", np.zeros(n, dtype=[("a", "<f4"), ("b", "<i4")]))


def _wrong_image_count(root, sid):
    n, c = _sizes(root, sid)
    np.save(root / sid / "arrays" / "image_ais.npy", np.zeros((n - 1, c)))


def _undeclared_array(root, sid):
    _manifest(root, sid, lambda m: m["files"].pop("arrays/ais.npy"))


def _files_as_a_list(root, sid):
    _manifest(root, sid, lambda m: m.update(files=sorted(m["files"])))


def _names_as_text(root, sid):
    _manifest(root, sid, lambda m: m["fields"].update(image_names="img00.png"))


def _summary_without_k_star(root, sid):
    _manifest(root, sid, lambda m: m["fields"]["summary"].update(mean_k_star=None))


def _negative_image_size(root, sid):
    table = np.load(root / sid / "arrays" / "images_shapes.npy")
    table[0, 0] = -table[0, 0]
    np.save(root / sid / "arrays" / "images_shapes.npy", table)


def _falling_k_values(root, sid):
    k = np.load(root / sid / "arrays" / "k_values.npy")
    np.save(root / sid / "arrays" / "k_values.npy", k[::-1].copy())


def _curve_left_out(root, sid):
    _manifest(root, sid, lambda m: m.update(curves=[x for x in m["curves"] if x != "test_topk"]))


def _seeds_as_text(root, sid):
    def change(doc):
        doc["settings"]["n_seeds"] = "1"
    _manifest(root, sid, change)
    index = json.loads((root / "bundle.json").read_text())
    change(index["settings"][0])
    (root / "bundle.json").write_text(json.dumps(index))


def _entry_without_label(root, sid):
    index = json.loads((root / "bundle.json").read_text())
    del index["settings"][0]["label"]
    (root / "bundle.json").write_text(json.dumps(index))


def _entry_settings_differ(root, sid):
    index = json.loads((root / "bundle.json").read_text())
    index["settings"][0]["settings"]["model"] = "vgg16"
    (root / "bundle.json").write_text(json.dumps(index))


CASES = {
    "object dtype": (_object_dtype, r"arrays/ais.npy has dtype '\|O'; only numbers"),
    "declared shape 1e12": (_huge_shape, r"arrays/activations.npy declares shape \(10, 1280, 1000000, 1000000\)"),
    "complex dtype": (_complex_dtype, r"arrays/r_orig.npy has dtype '<c16'"),
    "structured dtype": (_structured_dtype, r"arrays/r_orig.npy has dtype"),
    "shape of another image count": (_wrong_image_count, r"arrays/image_ais.npy has shape \(9, 1280\), expected "
                                                         r"\(10, 1280\)"),
    "array missing from the manifest": (_undeclared_array, r"manifest.json does not declare the array arrays/ais"),
    "files as a list": (_files_as_a_list, r"manifest.json has field 'files' of the wrong type"),
    "image names as text": (_names_as_text, r"manifest.json has field 'image_names' under 'fields' of the wrong"),
    "summary without k*": (_summary_without_k_star, r"field 'summary' under 'fields' of the wrong type"),
    "negative image size": (_negative_image_size, r"arrays/images_shapes.npy holds sizes outside"),
    "falling k values": (_falling_k_values, r"arrays/k_values.npy must rise"),
    "a curve left out": (_curve_left_out, r"field 'curves' of the wrong type"),
    "seeds as text": (_seeds_as_text, r"bundle.json has field 'n_seeds' in the settings of entry 0 of the wrong"),
    "entry without label": (_entry_without_label, r"bundle file bundle.json has no field 'label' in setting entry 0"),
    "entry settings differ": (_entry_settings_differ, r"manifest.json holds other settings than its entry"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bundles_that_break_the_schema_are_refused_on_opening(bundle, tmp_path, case):
    from aisviz.pipeline.bundles import BundleError, open_catalog

    root, sid = _copy(bundle, tmp_path)
    change, message = CASES[case]
    change(root, sid)
    _reseal(root)
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match=message) as info:
            open_catalog(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert "\n" not in text and "aisviz precompute" in text
    assert str(tmp_path) not in text                 # named relative to the bundle
    assert peak < 20e6                               # nothing of the declared size was allocated


def test_the_untouched_bundle_passes_and_opens(bundle, tmp_path):
    """The reseal helper alone changes nothing the schema cares about (so each case above fails for its change)."""
    from aisviz.pipeline.bundles import open_catalog

    root, sid = _copy(bundle, tmp_path)
    _reseal(root)
    catalog = open_catalog(root, verify=True)
    assert catalog.load(sid).n_images == 10


# ---------------------------------------------------------------------------------------------------
# links out of the bundle


def _png_to_passwd(root, sid, elsewhere):
    (root / sid / "images" / "0000.png").unlink()
    (root / sid / "images" / "0000.png").symlink_to("/etc/passwd")


def _setting_folder_elsewhere(root, sid, elsewhere):
    shutil.move(root / sid, elsewhere / sid)
    (root / sid).symlink_to(elsewhere / sid)


def _arrays_elsewhere(root, sid, elsewhere):
    shutil.move(root / sid / "arrays", elsewhere / "arrays")
    (root / sid / "arrays").symlink_to(elsewhere / "arrays")


def _relative_link_up(root, sid, elsewhere):
    shutil.copy(root / sid / "arrays" / "mds.npy", elsewhere / "mds.npy")
    (root / sid / "arrays" / "mds.npy").unlink()
    (root / sid / "arrays" / "mds.npy").symlink_to(os.path.relpath(elsewhere / "mds.npy", root / sid / "arrays"))


def _index_elsewhere(root, sid, elsewhere):
    shutil.move(root / "bundle.json", elsewhere / "bundle.json")
    (root / "bundle.json").symlink_to(elsewhere / "bundle.json")


LINKS = {"an image PNG to /etc/passwd": (_png_to_passwd, "images/0000.png leads outside the bundle"),
         "a setting folder linked elsewhere": (_setting_folder_elsewhere, "manifest.json leads outside the bundle"),
         "arrays/ linked elsewhere": (_arrays_elsewhere, r"arrays/\w+.npy leads outside the bundle"),
         "a relative link up and out": (_relative_link_up, "arrays/mds.npy leads outside the bundle"),
         "the index linked elsewhere": (_index_elsewhere, "bundle.json leads outside the bundle")}


@pytest.mark.parametrize("case", list(LINKS))
def test_links_out_of_the_bundle_are_refused(bundle, tmp_path, case):
    from aisviz.pipeline.bundles import BundleError, open_catalog

    root, sid = _copy(bundle, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    change, message = LINKS[case]
    change(root, sid, elsewhere)
    _reseal(root)                                    # the sizes and checksums now describe the linked files
    with pytest.raises(BundleError, match=message) as info:
        open_catalog(root, verify=True)
    assert "\n" not in str(info.value) and str(elsewhere) not in str(info.value)


def test_links_that_stay_inside_are_accepted(bundle, tmp_path):
    """A bundle folder reached through a link, and a link from one file of the bundle to another, open."""
    from aisviz.pipeline.bundles import open_catalog

    root, sid = _copy(bundle, tmp_path)
    (root / sid / "thumbnails.png").unlink()
    (root / sid / "thumbnails.png").symlink_to(Path("images") / "0001.png")
    _reseal(root)
    (tmp_path / "via").symlink_to(root)
    assert open_catalog(tmp_path / "via", verify=True).load(sid).n_images == 10


# ---------------------------------------------------------------------------------------------------
# the command line: serve --shared and precompute refuse a bad bundle (exit 3, one line naming the file)


def _cli(args, tmp_path, timeout=300):
    """Run `aisviz ARGS`; a server that starts after all (the bug) is stopped with its kernels at the timeout."""
    env = dict(os.environ, AISVIZ_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.Popen([sys.executable, "-m", "aisviz", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("case", ["object dtype", "entry without label", "files as a list",
                                  "an image PNG to /etc/passwd"])
def test_serve_shared_refuses_a_bad_bundle_before_starting(bundle, tmp_path, case):
    root, sid = _copy(bundle, tmp_path)
    change, message = CASES[case] if case in CASES else LINKS[case]
    change(*(root, sid) if case in CASES else (root, sid, tmp_path))
    _reseal(root)
    out = _cli(["serve", "--shared", "--bundles", str(root), "--port", "18231"], tmp_path, timeout=60)
    assert out.returncode == 3, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("aisviz: error: bundle file ") and "internal error" not in line


@pytest.mark.parametrize("case", ["declared shape 1e12", "entry without label", "files as a list"])
def test_precompute_refuses_a_bad_bundle_before_computing(bundle, tmp_path, case):
    root, sid = _copy(bundle, tmp_path)
    change, message = CASES[case]
    change(root, sid)
    _reseal(root)
    out = _cli(["precompute", "--out", str(root), "--seeds", "1", "--folds", "2", "--quiet"], tmp_path)
    assert out.returncode == 3, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("aisviz: error: bundle file ") and "internal error" not in line
    assert not (tmp_path / "home" / "features").exists()     # nothing was computed
