import pytest

from nafft.data.pair_folders import PairingError, find_pairs, scan_pairs
from nafft.errors import UserError
from tests.data.conftest import make_pair


def test_flat_layout(tmp_path):
    for i, rel in enumerate(["b.png", "a.png", "sub/c.png"]):
        make_pair(tmp_path, rel, seed=i)
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == ["a.png", "b.png", "sub/c.png"]
    assert pairs[0].blur == tmp_path / "blur" / "a.png" and pairs[0].sharp == tmp_path / "sharp" / "a.png"
    assert pairs[0].size == (40, 48)


def test_input_target_layout(tmp_path):
    make_pair(tmp_path, "x.png", names=("input", "target"))
    (pair,) = find_pairs(tmp_path)
    assert pair.name == "x.png" and pair.blur.parent.name == "input" and pair.sharp.parent.name == "target"


def test_split_layout_names_are_unique_and_blur_gamma_ignored(tmp_path):
    for seq in ["GOPR0372_07_00", "GOPR0374_11_00"]:
        for frame in ["000047.png", "000048.png"]:
            make_pair(tmp_path / seq, frame)
        make_pair(tmp_path / seq, "000099.png", names=("blur_gamma", "unused"))
    (tmp_path / "notes").mkdir()  # a folder without pair folders is not a sequence
    pairs = find_pairs(tmp_path)
    assert [p.name for p in pairs] == [
        "GOPR0372_07_00/000047.png", "GOPR0372_07_00/000048.png",
        "GOPR0374_11_00/000047.png", "GOPR0374_11_00/000048.png"]
    assert all(p.blur.parent.name == "blur" for p in pairs)


def test_every_problem_listed_at_once(tmp_path):
    make_pair(tmp_path / "seq1", "good.png")
    make_pair(tmp_path / "seq1", "mismatch.png", sharp_size=(40, 40))
    make_pair(tmp_path / "seq1", "lonely_blur.png")
    (tmp_path / "seq1" / "sharp" / "lonely_blur.png").unlink()
    make_pair(tmp_path / "seq2", "lonely_sharp.png")
    (tmp_path / "seq2" / "blur" / "lonely_sharp.png").unlink()
    make_pair(tmp_path / "seq2", "broken.png")
    (tmp_path / "seq2" / "sharp" / "broken.png").write_bytes(b"garbage")
    make_pair(tmp_path / "seq3", "only.png")
    for f in (tmp_path / "seq3" / "sharp").iterdir():
        f.unlink()
    (tmp_path / "seq3" / "sharp").rmdir()

    with pytest.raises(PairingError) as info:
        find_pairs(tmp_path)
    error = info.value
    assert isinstance(error, UserError)
    lines = str(error).splitlines()
    assert lines[0] == f"{tmp_path}: 5 pairing problems:"
    assert len(lines) == 6 and len(error.problems) == 5
    text = str(error)
    s1, s2, s3 = (tmp_path / s for s in ("seq1", "seq2", "seq3"))
    assert (f"missing sharp partner: {s1 / 'blur' / 'lonely_blur.png'} "
            f"(expected {s1 / 'sharp' / 'lonely_blur.png'})") in text
    assert f"missing blur partner: {s2 / 'sharp' / 'lonely_sharp.png'}" in text
    assert (f"size mismatch: {s1 / 'blur' / 'mismatch.png'} is 48x40 but {s1 / 'sharp' / 'mismatch.png'} "
            "is 40x40") in text
    assert f"unreadable: {s2 / 'sharp' / 'broken.png'}" in text
    assert f"{s3 / 'blur'}: has no partner folder {s3 / 'sharp'}" in text

    pairs, problems = scan_pairs(tmp_path)
    assert [p.name for p in pairs] == ["seq1/good.png"] and len(problems) == 5


def test_no_pairs_is_an_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(PairingError, match="no pair folders found"):
        find_pairs(tmp_path)
    with pytest.raises(PairingError, match="not a folder"):
        find_pairs(tmp_path / "missing")
    (tmp_path / "blur").mkdir()
    (tmp_path / "sharp").mkdir()
    with pytest.raises(PairingError, match="no image pairs found"):
        find_pairs(tmp_path)


def test_gather_pairs_names_several_folders_apart(tmp_path):
    from nafft.data.pair_folders import gather_pairs, root_prefixes

    for root in ("a/test", "b/test", "photos"):
        make_pair(tmp_path / root, "x.png")
    single, problems = gather_pairs(tmp_path / "photos")
    assert [p.name for p in single] == ["x.png"] and problems == []  # one folder: its own names
    roots = [tmp_path / "a/test", tmp_path / "b/test", tmp_path / "photos", tmp_path / "photos"]
    assert root_prefixes(roots) == ["a/test", "b/test", "photos", "photos~2"]
    pairs, problems = gather_pairs(roots)
    assert [p.name for p in pairs] == ["a/test/x.png", "b/test/x.png", "photos/x.png", "photos~2/x.png"]
    assert pairs[0].blur == tmp_path / "a/test/blur/x.png" and pairs[0].size == (40, 48) and problems == []
    (tmp_path / "b/test/sharp/x.png").unlink()
    pairs, problems = gather_pairs(roots)
    assert len(pairs) == 3 and len(problems) == 1 and "missing sharp partner" in problems[0]
