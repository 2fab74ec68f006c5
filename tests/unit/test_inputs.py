"""Input handling that used to give silently wrong results or unclear messages: CSV faults named by cell,
NaN pixels, numbered names, labelled matrices (DataFrame, rsatoolbox RDMs), very large images."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from aisviz.core.comparison import to_rgb
from aisviz.errors import AisvizWarning, DataError
from aisviz.io.folders import load_folder, unpadded_numbers
from aisviz.io.interop import from_dataframe


def _sim(n, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.random((n, n))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1)
    return s


def _folder(tmp_path, names, csv_text=None, matrix=None):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for k, name in enumerate(names):
        Image.new("RGB", (40, 40), (k * 20 % 256, 90, 30)).save(root / "images" / name)
    if csv_text is not None:
        (root / "similarity.csv").write_text(csv_text)
    else:
        np.save(root / "similarity.npy", _sim(len(names)) if matrix is None else matrix)
    return root


NAMES = ("a.png", "b.png", "c.png", "d.png")
HEADER = ",a,b,c,d\n"


@pytest.mark.parametrize("body,words", [
    ("a,1,0.2,0.5,0.1\nb,0.2,1,,0.3\nc,0.5,0.7,1,0.2\nd,0.1,0.3,0.2,1\n",
     ["line 3 (image 'b')", "column 4", "is empty"]),
    ("a,1,0.2,0.5,0.1\nb,0.2,1,0.7,0.3\nc,0.5,NA,1,0.2\nd,0.1,0.3,0.2,1\n",
     ["line 4 (image 'c')", "column 3", "'NA'", "not a number"]),
    ("a,1,\"0,2\",0.5,0.1\nb,\"0,2\",1,0.7,0.3\nc,0.5,0.7,1,0.2\nd,0.1,0.3,0.2,1\n",
     ["line 2 (image 'a')", "column 3", "'0,2'", "decimal comma"]),
    ("a,1,0,2,0.5,0.1\nb,0,2,1,0.7,0.3\nc,0.5,0.7,1,0.2\nd,0.1,0.3,0.2,1\n",
     ["line 2 (image 'a')", "5 values", "decimal commas"]),
])
def test_csv_faults_name_line_column_and_value(tmp_path, body, words):
    root = _folder(tmp_path, NAMES, HEADER + body)
    with pytest.raises(DataError) as err:
        load_folder(root)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_csv_with_semicolons_names_the_fix(tmp_path):
    root = _folder(tmp_path, NAMES, ";a;b;c;d\na;1;0,2;0,5;0,1\nb;0,2;1;0,7;0,3\nc;0,5;0,7;1;0,2\nd;0,1;0,3;0,2;1\n")
    with pytest.raises(DataError, match=r"separates its values with ';' \(line 1\).*sep=';', decimal=','"):
        load_folder(root)


def test_csv_with_names_still_reads(tmp_path):
    body = "a.png,1,0.2,0.5,0.1\nb.png,0.2,1,0.7,0.3\nc.png,0.5,0.7,1,0.2\nd.png,0.1,0.3,0.2,1\n"
    ds = load_folder(_folder(tmp_path, NAMES, ",a.png,b.png,c.png,d.png\n" + body))
    assert ds.similarity[2, 1] == 0.7


def test_nan_pixels_are_filled_and_reported(tmp_path):
    a = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    a[10, 10] = np.nan
    a[20, 20] = np.inf
    path = tmp_path / "f.tif"
    Image.fromarray(a, mode="F").save(path)
    root = tmp_path / "s"
    (root / "images").mkdir(parents=True)
    for k in range(4):
        Image.open(path).save(root / "images" / f"im{k}.tif")
    np.save(root / "similarity.npy", _sim(4))
    ds = load_folder(root)
    with pytest.warns(AisvizWarning, match=r"im0.tif.*2 of 4096 pixels are NaN or infinite; filled"):
        rgb = np.asarray(ds.load_image(0))
    assert rgb.max() == 255 and rgb.min() == 0  # the image keeps its range, not black
    clean = np.asarray(to_rgb(Image.fromarray(np.nan_to_num(a, nan=0.5, posinf=0.5), mode="F")))
    assert np.abs(rgb.astype(int) - clean).max() <= 1


def test_unpadded_numbered_names_warn(tmp_path):
    names = [f"img{i}.png" for i in range(1, 13)]
    root = _folder(tmp_path, names)
    with pytest.warns(AisvizWarning, match=r"without zero padding.*img10.png comes before img2.png.*image_list.txt"):
        load_folder(root)
    (root / "image_list.txt").write_text("\n".join(names))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AisvizWarning)
        assert load_folder(root).image_names == tuple(names)  # the list gives the order: no warning


@given(st.lists(st.integers(0, 5000), min_size=2, max_size=30, unique=True), st.booleans())
def test_unpadded_numbers_property(numbers, padded):
    width = len(str(max(numbers)))
    names = sorted(f"im{n:0{width}d}.png" if padded else f"im{n}.png" for n in numbers)
    natural = sorted(names, key=lambda s: int(s[2:-4]))
    assert unpadded_numbers(names) == (names != natural)


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(6))), st.floats(1e-150, 1e150))
def test_dataframe_is_aligned_by_labels(perm, scale):
    names = tuple(f"s{i}.png" for i in range(6))
    sim = _sim(6) * scale
    labels = [names[i] for i in perm]
    df = pd.DataFrame(sim[np.ix_(perm, perm)], index=labels, columns=labels)
    ds = from_dataframe(df, image_names=names, name="df")
    np.testing.assert_array_equal(ds.similarity, sim)
    stems = [label[:-4] for label in labels]  # labels may omit the extension
    ds2 = from_dataframe(pd.DataFrame(sim[np.ix_(perm, perm)], index=stems, columns=stems), image_names=names,
                         name="df")
    np.testing.assert_array_equal(ds2.similarity, sim)


def test_dataframe_label_mismatch_is_an_error():
    names = tuple(f"s{i}" for i in range(5))
    df = pd.DataFrame(_sim(5), index=list(names[:4]) + ["zz"], columns=list(names))
    with pytest.raises(DataError, match=r"row labels do not match.*'zz'.*without a label: \['s4'\]"):
        from_dataframe(df, image_names=names, name="df")


def test_unlabelled_dataframe_is_taken_in_order():
    ds = from_dataframe(pd.DataFrame(_sim(5)), image_names=tuple("abcde"), name="df")
    np.testing.assert_array_equal(ds.similarity, _sim(5))


def test_large_image_is_called_large_not_damaged(tmp_path, monkeypatch):
    root = _folder(tmp_path, NAMES)
    Image.new("RGB", (3000, 2000)).save(root / "images" / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # Pillow refuses above 2x this
    ds = load_folder(root)
    with pytest.raises(DataError) as err:
        ds.load_image(1)
    msg = str(err.value)
    assert "very large" in msg and "damaged" not in msg and "smaller copy" in msg


@settings(max_examples=15, deadline=None)
@given(st.permutations(list(range(5))))
def test_labelled_csv_rows_are_aligned_to_the_image_list(tmp_path_factory, perm):
    names = [f"m{i}.png" for i in range(5)]
    sim = np.round(_sim(5), 6)
    root = _folder(tmp_path_factory.mktemp("csv"), names, matrix=sim)
    (root / "similarity.npy").unlink()
    labels = [names[i] for i in perm]
    pd.DataFrame(sim[np.ix_(perm, perm)], index=labels, columns=labels).to_csv(root / "similarity.csv")
    (root / "image_list.txt").write_text("\n".join(names))
    np.testing.assert_array_equal(load_folder(root).similarity, sim)
