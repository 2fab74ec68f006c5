"""Tests for aisviz.datasets and aisviz.catalog: loaders, validation, image decoding, downloads.

Nothing here touches the network. Tests marked `realdata` use the real data sets found on the data
search path (AISVIZ_DATA=../shared/data in CI) and skip where they are absent.
"""
import hashlib
import io
import json
import os
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aisviz.core.comparison import ComparisonSet, dissimilarity_to_similarity, validate_similarity
from aisviz.errors import DataError
from aisviz.io import catalog
from aisviz.io.catalog import data_search_path, download, list_datasets, load_dataset, locate_dataset
from aisviz.io.folders import load_folder

REAL_DATA_REASON = "real data not on AISVIZ_DATA (set AISVIZ_DATA=../shared/data)"


# ---------------------------------------------------------------------------------------------
# helpers


def random_similarity(n, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.random((n, n))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    return s


def write_images(folder, names, size=(8, 6)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in names:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def make_set(tmp_path, names=("a.png", "b.png", "c.png", "d.png"), matrix=None, fname="similarity.npy"):
    folder = tmp_path / "myset"
    write_images(folder / "images", names)
    matrix = random_similarity(len(names)) if matrix is None else matrix
    if fname.endswith(".npy"):
        np.save(folder / fname, matrix)
    else:
        np.savetxt(folder / fname, matrix, delimiter=",")
    return folder


def in_memory_set(images, n=None):
    n = len(images) if n is None else n
    return ComparisonSet(
        name="mem",
        image_names=tuple(f"im{i}" for i in range(n)),
        similarity=random_similarity(n),
        images=tuple(images),
        observer="simulated",
    )


def real_set(name):
    if locate_dataset(name) is None:
        pytest.skip(REAL_DATA_REASON)
    return load_dataset(name)


# ---------------------------------------------------------------------------------------------
# folder loader


def test_default_order_is_sorted_file_names_case_insensitive_extensions(tmp_path):
    folder = make_set(tmp_path, names=("c.PNG", "a.jpg", "b.tiff"))
    (folder / "images" / "notes.txt").write_text("not an image")
    ds = load_folder(folder)
    assert ds.image_names == ("a.jpg", "b.tiff", "c.PNG")
    assert ds.name == "myset" and ds.observer == "human" and ds.direction_note == ""
    assert [p.name for p in ds.image_paths] == list(ds.image_names)
    assert ds.load_image(2).mode == "RGB"


def test_image_list_txt_sets_order_and_extra_images_are_ignored(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png", "extra.png"))
    np.save(folder / "similarity.npy", random_similarity(3))
    (folder / "image_list.txt").write_text("c.png\na.png\n\nb.png\n")
    ds = load_folder(folder)
    assert ds.image_names == ("c.png", "a.png", "b.png")
    assert ds.meta["image_list"] == "image_list.txt"


def test_image_list_csv_filename_column(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"))
    (folder / "image_list.csv").write_text("row,filename,category\n0,b.png,x\n1,c.png,y\n2,a.png,x\n")
    assert load_folder(folder).image_names == ("b.png", "c.png", "a.png")


def test_image_list_csv_without_filename_column(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"))
    (folder / "image_list.csv").write_text("row,file\n0,a.png\n1,b.png\n2,c.png\n")
    with pytest.raises(DataError, match=r"image_list.csv.*no 'filename' column"):
        load_folder(folder)


def test_numeric_csv_matrix(tmp_path):
    s = random_similarity(3)
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"), matrix=s, fname="similarity.csv")
    np.testing.assert_allclose(load_folder(folder).similarity, s)


def test_csv_matrix_with_header_and_index_names(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"), fname="similarity.csv")
    (folder / "similarity.csv").write_text(
        ",b.png,a.png,c.png\nb.png,1,0.2,0.5\na.png,0.2,1,0.7\nc.png,0.5,0.7,1\n"
    )
    ds = load_folder(folder)  # no image list: the CSV's names give the order
    assert ds.image_names == ("b.png", "a.png", "c.png")
    assert ds.similarity[0, 2] == 0.5 and ds.similarity[1, 2] == 0.7
    (folder / "similarity.csv").write_text(",b.png,a.png,c.png\nc.png,1,0.2,0.5\n"
                                           "a.png,0.2,1,0.7\nb.png,0.5,0.7,1\n")
    with pytest.raises(DataError, match="header names and the index-column names differ"):
        load_folder(folder)


def test_csv_header_names_must_match_image_list(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"), fname="similarity.csv")
    (folder / "similarity.csv").write_text("a,b,c\n1,0.2,0.5\n0.2,1,0.7\n0.5,0.7,1\n")
    (folder / "image_list.txt").write_text("a.png\nb.png\nc.png\n")
    assert load_folder(folder).image_names == ("a.png", "b.png", "c.png")  # stems match
    (folder / "image_list.txt").write_text("b.png\na.png\nc.png\n")
    ds = load_folder(folder)  # the CSV's names label its rows: aligned to the list, not taken by position
    assert ds.image_names == ("b.png", "a.png", "c.png") and ds.similarity[0, 2] == 0.7 and ds.similarity[1, 2] == 0.5
    (folder / "image_list.txt").write_text("b.png\na.png\nd.png\n")
    write_images(folder / "images", ["d.png"])
    with pytest.raises(DataError, match=r"similarity.csv.*do not match image_list.txt.*same images, in any order"):
        load_folder(folder)


def test_csv_with_non_numeric_cell(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"), fname="similarity.csv")
    (folder / "similarity.csv").write_text("1,0.2,0.5\n0.2,1,oops\n0.5,0.7,1\n")
    with pytest.raises(DataError, match=r"similarity.csv.*'oops'.*not a number"):
        load_folder(folder)


def test_dissimilarity_is_converted_with_direction_and_note(tmp_path):
    d = np.array([[0, 2, 8, 4], [2, 0, 6, 1], [8, 6, 0, 3], [4, 1, 3, 0]], dtype=float)
    folder = make_set(tmp_path, matrix=d, fname="dissimilarity.npy")
    ds = load_folder(folder)
    s = ds.similarity
    np.testing.assert_allclose(np.diag(s), 1.0)
    assert s[0, 2] == 0.0  # most dissimilar pair -> least similar
    assert s[1, 3] == pytest.approx(1 - 1 / 8)  # least dissimilar pair -> most similar
    assert np.corrcoef(ds.upper_triangle(), -d[np.triu_indices(4, 1)])[0, 1] == pytest.approx(1)
    assert "dissimilarity" in ds.direction_note and "1 - d / max(d)" in ds.direction_note


def test_dissimilarity_to_similarity_function():
    d = np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]], dtype=float)
    s, note = dissimilarity_to_similarity(d)
    np.testing.assert_allclose(s, [[1, 2 / 3, 0], [2 / 3, 1, 1 / 3], [0, 1 / 3, 1]])
    assert "unchanged" in note
    with pytest.raises(DataError, match="no positive value"):
        dissimilarity_to_similarity(-d)


def test_similarity_file_preferred_over_dissimilarity(tmp_path):
    folder = make_set(tmp_path)
    np.save(folder / "dissimilarity.npy", random_similarity(4, seed=5))
    ds = load_folder(folder)
    assert ds.meta["matrix_file"] == "similarity.npy" and ds.direction_note == ""


def test_dataset_json_names_file_and_metadata(tmp_path):
    folder = make_set(tmp_path)
    np.save(folder / "my_distances.npy", random_similarity(4, seed=3))
    (folder / "dataset.json").write_text(json.dumps({
        "name": "mine", "citation": "Me (2024)", "licence": "CC-BY",
        "observer": "simulated", "dissimilarity": "my_distances.npy",
    }))
    ds = load_folder(folder)
    assert (ds.name, ds.citation, ds.licence, ds.observer) == ("mine", "Me (2024)", "CC-BY", "simulated")
    assert ds.meta["matrix_file"] == "my_distances.npy" and "dissimilarity" in ds.direction_note
    assert load_folder(folder, name="other").name == "other"


def test_dataset_json_errors(tmp_path):
    folder = make_set(tmp_path)
    (folder / "dataset.json").write_text('{"similarity": "nope.npy"}')
    with pytest.raises(DataError, match=r"dataset.json.*nope.npy.*does not exist"):
        load_folder(folder)
    (folder / "dataset.json").write_text("{broken")
    with pytest.raises(DataError, match=r"dataset.json.*Fix the JSON"):
        load_folder(folder)


def test_matrix_only_folder(tmp_path):
    folder = tmp_path / "matrix_only"
    folder.mkdir()
    np.save(folder / "similarity_normalized.npy", random_similarity(3))
    (folder / "image_list.txt").write_text("x.jpg\ny.jpg\nz.jpg\n")
    ds = load_folder(folder)
    assert ds.image_paths is None and ds.images is None and ds.n_images == 3
    for load in (ds.load_image, ds.image_bytes):
        with pytest.raises(DataError, match=r"no images.*matrix_only/images"):
            load(0)
    assert len(ds.content_hash()) == 64  # names and matrix still hash


# --- loader errors


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*data/README.md"):
        load_folder(tmp_path / "nowhere")


def test_no_matrix_file_lists_what_was_looked_for(tmp_path):
    folder = tmp_path / "set"
    write_images(folder / "images", ["a.png", "b.png", "c.png"])
    with pytest.raises(DataError, match=r"no similarity matrix.*similarity.npy.*dissimilarity_mean.csv"):
        load_folder(folder)


def test_missing_images_listed(tmp_path):
    names = [f"im{i}.png" for i in range(8)]
    folder = make_set(tmp_path, names=names[:1], matrix=random_similarity(8))
    (folder / "image_list.txt").write_text("\n".join(names))
    with pytest.raises(DataError) as err:
        load_folder(folder)
    msg = str(err.value)
    assert "7 of the 8 images" in msg and "im1.png" in msg and "2 more" in msg and "Copy them" in msg
    assert "im7.png" not in msg  # at most 5 names


def test_duplicate_names_in_image_list(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"))
    (folder / "image_list.txt").write_text("a.png\nb.png\na.png\n")
    with pytest.raises(DataError, match=r"image_list.txt.*more than once.*a.png"):
        load_folder(folder)


def test_matrix_size_differs_from_image_count(tmp_path):
    folder = make_set(tmp_path, names=("a.png", "b.png", "c.png"), matrix=random_similarity(5))
    with pytest.raises(DataError, match=r"similarity.npy is 5×5 but images/ .* gives 3 images"):
        load_folder(folder)


def test_truncated_npy(tmp_path):
    folder = make_set(tmp_path)
    data = (folder / "similarity.npy").read_bytes()
    (folder / "similarity.npy").write_bytes(data[:-20])
    with pytest.raises(DataError, match=r"cannot read matrix file .*similarity.npy.*re-create"):
        load_folder(folder)


def test_bad_matrix_in_folder_names_the_file(tmp_path):
    s = random_similarity(4)
    s[0, 1] += 0.1
    folder = make_set(tmp_path, matrix=s)
    with pytest.raises(DataError, match=r"similarity.npy.*not symmetric"):
        load_folder(folder)


def test_images_are_not_decoded_at_load_time(tmp_path):
    folder = make_set(tmp_path)
    (folder / "images" / "b.png").write_bytes(b"not a png")
    ds = load_folder(folder)  # only existence is checked
    with pytest.raises(DataError, match=r"b.png.*re-download it or replace it"):
        ds.load_image(1)


# ---------------------------------------------------------------------------------------------
# matrix validation


def test_validate_returns_float64_copy():
    s = random_similarity(4).astype(np.float32)
    out = validate_similarity(s)
    assert out.dtype == np.float64 and out is not s


@pytest.mark.parametrize(
    "matrix, words",
    [
        (np.ones((3, 4)), ["shape (3, 4)", "square"]),
        (np.ones((2, 2, 2)), ["square"]),
        (np.eye(2) + 0.5, ["at least 3"]),
    ],
)
def test_validate_shape(matrix, words):
    with pytest.raises(DataError) as err:
        validate_similarity(matrix)
    assert all(w in str(err.value) for w in words)


def test_validate_asymmetric_reports_where_and_fix():
    s = random_similarity(5)
    s[1, 3] += 0.25
    with pytest.raises(DataError) as err:
        validate_similarity(s, name="toy")
    msg = str(err.value)
    assert "'toy' is not symmetric" in msg and "[1, 3]" in msg and "(S + S.T) / 2" in msg


def test_validate_symmetry_tolerance_is_relative():
    s = random_similarity(5) * 1e-4
    s[1, 3] += 1e-14  # tiny relative to the scale: fine
    validate_similarity(s)
    s[1, 3] += 1e-10
    with pytest.raises(DataError):
        validate_similarity(s)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_non_finite(bad):
    s = random_similarity(4)
    s[2, 1] = s[1, 2] = bad
    with pytest.raises(DataError) as err:
        validate_similarity(s, image_names=["a", "b", "c", "d"])
    msg = str(err.value)
    assert "2 non-finite" in msg and "row 1 (image 'b'), column 2" in msg


def test_validate_wrong_size():
    with pytest.raises(DataError, match=r"4×4 but there are 5 images"):
        validate_similarity(random_similarity(4), n_images=5)


def test_validate_constant_row_names_the_image():
    s = random_similarity(4)
    s[2, [0, 1, 3]] = s[[0, 1, 3], 2] = 0.3
    with pytest.raises(DataError, match=r"image 'c'.*same value.*undefined"):
        validate_similarity(s, image_names=["a", "b", "c", "d"])


def test_validate_constant_matrix():
    with pytest.raises(DataError, match="constant off the diagonal"):
        validate_similarity(np.full((4, 4), 0.5))


# ---------------------------------------------------------------------------------------------
# ComparisonSet


def test_set_duplicate_names():
    with pytest.raises(DataError, match=r"duplicate image names.*'a'"):
        ComparisonSet("x", ("a", "b", "a"), random_similarity(3))


def test_set_rejects_both_paths_and_images_and_bad_lengths(tmp_path):
    img = Image.new("RGB", (2, 2))
    with pytest.raises(DataError, match="not both"):
        ComparisonSet("x", ("a", "b", "c"), random_similarity(3),
                      image_paths=[tmp_path / "a"] * 3, images=[img] * 3)
    with pytest.raises(DataError, match="3 image names but 2 images"):
        ComparisonSet("x", ("a", "b", "c"), random_similarity(3), images=[img] * 2)
    with pytest.raises(DataError, match="observer"):
        ComparisonSet("x", ("a", "b", "c"), random_similarity(3), observer="robot")
    with pytest.raises(DataError, match="relevant_masks"):
        ComparisonSet("x", ("a", "b", "c"), random_similarity(3), relevant_masks=np.zeros((2, 4, 4)))


def test_similarity_is_read_only():
    ds = ComparisonSet("x", ("a", "b", "c"), random_similarity(3))
    with pytest.raises(ValueError, match="read-only"):
        ds.similarity[0, 1] = 5


def test_upper_triangle_order():
    s = random_similarity(5)
    ds = ComparisonSet("x", tuple("abcde"), s)
    up = ds.upper_triangle()
    assert up.shape == (10,)
    np.testing.assert_array_equal(up, s[np.triu_indices(5, 1)])
    assert up[0] == s[0, 1] and up[4] == s[1, 2]


def test_subset_keeps_everything_aligned(tmp_path):
    names = [f"im{i}.png" for i in range(6)]
    folder = make_set(tmp_path, names=names, matrix=random_similarity(6))
    ds = load_folder(folder)
    ds = ComparisonSet(ds.name, ds.image_names, ds.similarity, image_paths=ds.image_paths,
                       relevant_masks=np.arange(6)[:, None, None] * np.ones((6, 2, 2)) > 2)
    sub = ds.subset([4, 1, 5])
    assert sub.image_names == ("im4.png", "im1.png", "im5.png")
    assert [p.name for p in sub.image_paths] == list(sub.image_names)
    assert sub.similarity[0, 1] == ds.similarity[4, 1] and sub.similarity[2, 0] == ds.similarity[5, 4]
    assert sub.relevant_masks[:, 0, 0].tolist() == [True, False, True]
    assert sub.meta["subset_indices"] == [4, 1, 5]
    mask = np.zeros(6, dtype=bool)
    mask[[0, 2, 3]] = True
    assert ds.subset(mask).image_names == ("im0.png", "im2.png", "im3.png")
    with pytest.raises(DataError, match="0..5"):
        ds.subset([0, 1, 9])


def test_subset_of_in_memory_images():
    images = [Image.new("RGB", (3, 3), (i * 40, 0, 0)) for i in range(5)]
    sub = in_memory_set(images).subset([3, 0, 2])
    assert sub.load_image(0).getpixel((0, 0)) == (120, 0, 0)


def test_content_hash_changes_with_one_image_byte(tmp_path):
    folder = make_set(tmp_path)
    h1 = load_folder(folder).content_hash()
    assert load_folder(folder).content_hash() == h1
    path = folder / "images" / "c.png"
    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.write_bytes(bytes(data))
    assert load_folder(folder).content_hash() != h1


def test_content_hash_of_in_memory_set_and_matrix_change():
    images = [Image.new("RGB", (3, 3), (i * 40, 0, 0)) for i in range(4)]
    ds = in_memory_set(images)
    other = ComparisonSet("mem", ds.image_names, random_similarity(4, seed=9), images=ds.images,
                          observer="simulated")
    assert ds.content_hash() == in_memory_set(images).content_hash() != other.content_hash()
    one_pixel = images[:3] + [images[3].copy()]
    one_pixel[3].putpixel((2, 2), (120, 0, 1))
    assert in_memory_set(one_pixel).content_hash() != ds.content_hash()
    # the same pixels in another shape are another image
    reshaped = images[:3] + [Image.frombytes("RGB", (1, 9), images[3].tobytes())]
    assert in_memory_set(reshaped).content_hash() != ds.content_hash()


# ---------------------------------------------------------------------------------------------
# image decoding: always 8-bit RGB


def _load_single(tmp_path, image, fname):
    folder = tmp_path / "one"
    (folder / "images").mkdir(parents=True)
    image.save(folder / "images" / fname)
    for extra in ("x.png", "y.png"):
        Image.new("RGB", (2, 2)).save(folder / "images" / extra)
    np.save(folder / "similarity.npy", random_similarity(3))
    ds = load_folder(folder)
    out = ds.load_image(ds.image_names.index(fname))
    assert out.mode == "RGB" and np.asarray(out).dtype == np.uint8
    return np.asarray(out)


def test_grayscale_and_bilevel(tmp_path):
    out = _load_single(tmp_path, Image.new("L", (4, 4), 77), "a.png")
    assert (out == 77).all()
    out = _load_single(tmp_path / "b", Image.new("1", (4, 4), 1), "a.bmp")
    assert (out == 255).all()


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (2, 1))
    im.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    im.info["transparency"] = 0
    out = _load_single(tmp_path, im, "a.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (200, 100, 0)


def test_rgba_opaque_drops_alpha(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((5, 5), 255, np.uint8)])
    out = _load_single(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png")
    np.testing.assert_array_equal(out, rgb)


def test_rgba_transparent_composites_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 1] = (0, 0, 0, 255)  # opaque black stays black
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    out = _load_single(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (0, 0, 0)
    assert 120 <= out[0, 2, 0] <= 135


def test_la_transparent(tmp_path):
    out = _load_single(tmp_path, Image.new("LA", (2, 2), (0, 0)), "a.png")
    assert (out == 255).all()


def test_cmyk(tmp_path):
    out = _load_single(tmp_path, Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "a.tif")
    assert tuple(out[0, 0]) == (255, 0, 0)
    out = _load_single(tmp_path / "j", Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "a.jpg")
    assert out.min() > 240


def test_16_bit(tmp_path):
    im = Image.fromarray(np.array([[0, 256, 65535, 32768]], dtype=np.uint16))
    assert im.mode == "I;16"
    out = _load_single(tmp_path, im, "a.png")
    assert out[0, :, 0].tolist() == [0, 1, 255, 128]
    out = _load_single(tmp_path / "t", im, "a.tif")
    assert out[0, :, 0].tolist() == [0, 1, 255, 128]


def test_32_bit_and_float_scaled_by_own_range():
    ints = Image.fromarray(np.array([[100, 200, 300]], dtype=np.int32))
    floats = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32))
    assert (ints.mode, floats.mode) == ("I", "F")
    ds = in_memory_set([ints, floats, Image.new("F", (3, 1), 7.0)])
    assert np.asarray(ds.load_image(0))[0, :, 0].tolist() == [0, 128, 255]
    assert np.asarray(ds.load_image(1))[0, :, 0].tolist() == [0, 128, 255]
    assert np.asarray(ds.load_image(2)).max() == 0  # constant image: no range to scale


@pytest.mark.parametrize("fmt, fname", [("PNG", "a.png"), ("JPEG", "a.jpg")])
def test_truncated_image(tmp_path, fmt, fname):
    folder = make_set(tmp_path, names=("x.png", "y.png"), matrix=random_similarity(3))
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "images" / fname, fmt)
    data = (folder / "images" / fname).read_bytes()
    (folder / "images" / fname).write_bytes(data[: len(data) // 2])
    ds = load_folder(folder)
    with pytest.raises(DataError) as err:
        ds.load_image(0)
    msg = str(err.value)
    assert fname in msg and "truncated" in msg and "re-download" in msg


# ---------------------------------------------------------------------------------------------
# catalog and search path


@pytest.fixture
def empty_search_path(tmp_path, monkeypatch):
    (tmp_path / "search").mkdir()
    monkeypatch.setenv("AISVIZ_DATA", str(tmp_path / "search"))
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    return tmp_path


def test_search_path_order(tmp_path, monkeypatch):
    monkeypatch.setenv("AISVIZ_DATA", f"{tmp_path / 'one'}{os.pathsep}{tmp_path / 'two'}")
    monkeypatch.setenv("AISVIZ_HOME", str(tmp_path / "home"))
    path = data_search_path()
    assert path[:2] == [tmp_path / "one", tmp_path / "two"]
    assert path[-1] == tmp_path / "home" / "data"


def test_unknown_name_suggests_close_match(empty_search_path):
    with pytest.raises(DataError) as err:
        load_dataset("peterson_animal")
    msg = str(err.value)
    assert "Did you mean 'peterson_animals'" in msg and "mur92" in msg


def test_known_but_absent_explains_search_path(empty_search_path):
    with pytest.raises(DataError) as err:
        load_dataset("peterson_animals")
    msg = str(err.value)
    for root in data_search_path():
        assert str(root / "peterson2018" / "animals") in msg
    assert "aisviz download peterson_animals" in msg and "AISVIZ_DATA" in msg
    with pytest.raises(DataError, match="cannot download it"):
        load_dataset("peterson_furniture")


def test_catalog_name_found_on_search_path(empty_search_path):
    root = empty_search_path / "search"
    make_set(root / "peterson2018", names=("a.png", "b.png", "c.png"))
    (root / "peterson2018" / "myset").rename(root / "peterson2018" / "animals")
    ds = load_dataset("peterson_animals")
    assert ds.name == "peterson_animals" and "Peterson" in ds.citation and ds.licence
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["peterson_animals"]["available"]
    assert rows["peterson_animals"]["location"] == str(root / "peterson2018" / "animals")
    assert not rows["mur92"]["available"] and rows["mur92"]["location"] is None


def test_load_dataset_accepts_a_folder_path(tmp_path):
    folder = make_set(tmp_path)
    assert load_dataset(folder).n_images == 4
    assert load_dataset(str(folder)).name == "myset"


def test_synthetic_name():
    assert load_dataset("synthetic").observer == "simulated"


# ---------------------------------------------------------------------------------------------
# downloads (no network: unreachable hosts and file:// URLs only)


def test_download_offline_fails_fast_with_manual_instructions(tmp_path):
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        download("peterson_animals", tmp_path, timeout=5, sources={
            "original/turkResults_CogSci2016.mat": "http://aisviz-test.invalid/turk.mat",
        })
    assert time.monotonic() - start < 30
    msg = str(err.value)
    target = tmp_path / "peterson2018" / "animals" / "original" / "turkResults_CogSci2016.mat"
    assert "no network" in msg and str(target) in msg and "aisviz download peterson_animals" in msg


def test_download_without_source(tmp_path):
    with pytest.raises(DataError, match=r"cannot download 'peterson_fruits'.*peterson2018/fruits"):
        download("peterson_fruits", tmp_path)


def test_fetch_checks_checksum_and_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello data")
    good = hashlib.sha256(b"hello data").hexdigest()
    target = tmp_path / "dest" / "file.bin"
    with pytest.raises(DataError) as err:
        catalog._fetch(src.as_uri(), target, "0" * 64, timeout=5)
    assert "0" * 64 in str(err.value) and good in str(err.value)
    assert not target.exists() and list(target.parent.iterdir()) == []  # temp file removed
    assert catalog._fetch(src.as_uri(), target, good, timeout=5) == good
    assert target.read_bytes() == b"hello data" and list(target.parent.iterdir()) == [target]


def _animals_zip(path, numbers, image_source=None):
    """A zip laid out like a typical archive: a subfolder plus macOS junk to skip."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__MACOSX/animals/._stim-0007.png", b"junk")
        for k in numbers:
            if image_source is not None:
                data = Path(image_source, f"stim-{k:04d}.png").read_bytes()
            else:
                buf = io.BytesIO()
                Image.new("RGB", (4, 4), (k % 256, 0, 0)).save(buf, "PNG")
                data = buf.getvalue()
            zf.writestr(f"animals/stim-{k:04d}.png", data)


def test_download_converts_peterson_animals_from_local_files(tmp_path, monkeypatch, capsys):
    from scipy.io import savemat

    numbers = [7, 19, 35, 78]
    sim = random_similarity(4) * 10
    src = tmp_path / "src"
    src.mkdir()
    savemat(src / "turk.mat", {"simMatrix": sim,
                               "animals_big_names": np.array([f"{k:4d}" for k in numbers])})
    _animals_zip(src / "animals.zip", numbers[::-1])
    entry = catalog.CATALOG["peterson_animals"]
    monkeypatch.setitem(catalog.CATALOG, "peterson_animals",
                        replace(entry, files={}))  # the fake .mat has no known checksum
    folder = download("peterson_animals", tmp_path / "dest", sources={
        "original/turkResults_CogSci2016.mat": (src / "turk.mat").as_uri(),
        "original/animals.zip": (src / "animals.zip").as_uri(),
    })
    ds = load_folder(folder)
    assert ds.image_names == tuple(f"stim-{k:04d}.png" for k in numbers)
    np.testing.assert_allclose(ds.similarity, sim / 10)
    assert ds.load_image(1).getpixel((0, 0)) == (19, 0, 0)
    record = (folder / "DOWNLOADED.txt").read_text()
    assert hashlib.sha256((src / "animals.zip").read_bytes()).hexdigest() in record
    assert "no published checksum" in capsys.readouterr().err


def test_download_rejects_a_broken_zip(tmp_path, monkeypatch):
    from scipy.io import savemat

    src = tmp_path / "src"
    src.mkdir()
    savemat(src / "turk.mat", {"simMatrix": random_similarity(3),
                               "animals_big_names": np.array(["   1", "   2", "   3"])})
    (src / "animals.zip").write_bytes(b"<html>not a zip</html>")
    monkeypatch.setitem(catalog.CATALOG, "peterson_animals",
                        replace(catalog.CATALOG["peterson_animals"], files={}))
    with pytest.raises(DataError, match=r"animals.zip is not a valid zip.*download again"):
        download("peterson_animals", tmp_path / "dest", sources={
            "original/turkResults_CogSci2016.mat": (src / "turk.mat").as_uri(),
            "original/animals.zip": (src / "animals.zip").as_uri(),
        })


# ---------------------------------------------------------------------------------------------
# real data (AISVIZ_DATA=../shared/data)


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["animals", "fruits", "vegetables"])
def test_real_peterson_with_images(kind):
    ds = real_set(f"peterson_{kind}")
    listed = (locate_dataset(ds.name) / "image_list.txt").read_text().split()
    assert ds.n_images == 120 and list(ds.image_names) == listed
    assert ds.similarity.shape == (120, 120) and ds.observer == "human"
    np.testing.assert_allclose(np.diag(ds.similarity), 1.0)
    assert "Peterson" in ds.citation
    im = ds.load_image(0)
    assert im.mode == "RGB" and min(im.size) >= 300


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["automobiles", "furniture", "various"])
def test_real_peterson_matrix_only(kind):
    ds = real_set(f"peterson_{kind}")
    assert ds.n_images == 120 and ds.image_paths is None
    with pytest.raises(DataError, match=rf"no images.*peterson2018/{kind}/images"):
        ds.load_image(0)


@pytest.mark.realdata
def test_real_mur92():
    ds = real_set("mur92")
    assert ds.n_images == 92 and ds.image_names[:2] == ("001.png", "002.png")
    assert "converted from dissimilarity" in ds.direction_note and "Mur" in ds.citation
    raw = np.load(locate_dataset("mur92") / "dissimilarity_mean.npy")
    iu = np.triu_indices(92, 1)
    assert np.corrcoef(ds.upper_triangle(), raw[iu])[0, 1] == pytest.approx(-1)
    assert ds.load_image(91).size == (175, 175)


@pytest.mark.realdata
def test_real_download_conversion_from_local_copies(tmp_path):
    """The download converters, fed the real original files through file:// URLs."""
    animals, mur = locate_dataset("peterson_animals"), locate_dataset("mur92")
    if animals is None or mur is None:
        pytest.skip(REAL_DATA_REASON)
    staged = load_folder(animals)
    _animals_zip(tmp_path / "animals.zip", [int(n[5:9]) for n in staged.image_names],
                 image_source=animals / "images")
    folder = download("peterson_animals", tmp_path / "dl", sources={
        "original/turkResults_CogSci2016.mat": (animals / "original/turkResults_CogSci2016.mat").as_uri(),
        "original/animals.zip": (tmp_path / "animals.zip").as_uri(),
    })
    got = load_folder(folder)
    assert got.image_names == staged.image_names
    np.testing.assert_array_equal(got.similarity, staged.similarity)

    folder = download("mur92", tmp_path / "dl", sources={
        rel: (mur / rel).as_uri() for rel in catalog.DOWNLOAD_SOURCES["mur92"]
    })
    for fname in ("dissimilarity_mean.npy", "dissimilarity_subjects.npy"):
        np.testing.assert_array_equal(np.load(folder / fname), np.load(mur / fname))
    assert (folder / "subjects.txt").read_text() == (mur / "subjects.txt").read_text()
    got, staged = load_folder(folder), load_folder(mur)
    assert got.image_names == staged.image_names
    np.testing.assert_array_equal(np.asarray(got.load_image(40)), np.asarray(staged.load_image(40)))
