import numpy as np
import pytest

from nafft.cli import main
from nafft.data.gopro_crops import TilingError, plan_tiles, prepare_tiles, tile_boxes, tile_name, tile_offsets
from nafft.data.io import decode_image, write_image
from tests.data.conftest import coordinate_image, make_pair


def test_gopro_frame_gives_the_eight_known_tiles():
    assert tile_offsets(720, 512, 256) == [0, 208]
    assert tile_offsets(1280, 512, 256) == [0, 256, 512, 768]
    assert tile_boxes(720, 1280, 512, 256) == [
        (1, 0, 0), (2, 0, 256), (3, 0, 512), (4, 0, 768),
        (5, 208, 0), (6, 208, 256), (7, 208, 512), (8, 208, 768)]


def test_border_tile_rule():
    assert tile_offsets(1290, 512, 256) == [0, 256, 512, 768, 778]  # 10 px left over > thresh 0
    assert tile_offsets(1290, 512, 256, thresh=10) == [0, 256, 512, 768]
    assert tile_offsets(1290, 512, 256, thresh=9) == [0, 256, 512, 768, 778]
    assert tile_offsets(512, 512, 256) == [0]
    assert tile_offsets(511, 512, 256) == []
    with pytest.raises(TilingError):
        tile_offsets(100, 0, 256)


def test_tile_names_are_unique_across_sequences():
    assert tile_name("GOPR0372_07_00/000047.png", 1) == "GOPR0372_07_00_000047_s001.png"
    assert tile_name("flat.jpg", 12) == "flat_s012.png"


def _split(tmp_path, size=(40, 72)):
    """Two sequences with the same frame names; pixel values encode coordinates (16-bit)."""
    root = tmp_path / "train"
    for tag, seq in enumerate(["GOPR0001_00_00", "GOPR0002_00_00"]):
        for frame in ["000001.png", "000002.png"]:
            write_image(root / seq / "blur" / frame, coordinate_image(*size, tag), bit_depth=16)
            write_image(root / seq / "sharp" / frame, coordinate_image(*size, 10 + tag), bit_depth=16)
    return root


def test_prepare_writes_exact_tiles(tmp_path):
    root = _split(tmp_path)
    summary = prepare_tiles(root, tmp_path / "out", crop=32, step=16, workers=1)
    # h offsets {0, 8}, w offsets {0, 16, 32, 40}: 8 tiles per frame, 4 frames
    assert summary.problems == [] and summary.pairs == 4 and summary.tiles_written == 32
    names = sorted(p.name for p in (tmp_path / "out" / "blur").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out" / "sharp").iterdir())
    assert len(names) == 32 and "GOPR0002_00_00_000001_s008.png" in names
    rgb, _, depth = decode_image(tmp_path / "out" / "sharp" / "GOPR0002_00_00_000001_s006.png")
    assert depth == 16 and rgb.shape == (32, 32, 3)
    np.testing.assert_array_equal(rgb, coordinate_image(40, 72, 11)[8:40, 16:48])


def _bad_split(tmp_path):
    root = tmp_path / "train"
    make_pair(root / "seqA", "good1.png", height=40, width=40)
    make_pair(root / "seqA", "mismatch.png", height=40, width=40, sharp_size=(40, 36))
    make_pair(root / "seqB", "good2.png", height=40, width=40, seed=1)
    make_pair(root / "seqB", "lonely.png", height=40, width=40)
    (root / "seqB" / "sharp" / "lonely.png").unlink()
    make_pair(root / "seqB", "broken.png", height=40, width=40)
    (root / "seqB" / "blur" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_prepare_cli_reports_bad_pairs_tiles_good_ones_and_resumes(tmp_path, capsys):
    root = _bad_split(tmp_path)
    out = tmp_path / "tiles"
    argv = ["prepare", "--input", str(root), "--out", str(out), "--crop", "32", "--step", "8", "--workers", "2"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    bad = [line for line in captured.err.splitlines() if line.startswith("nafft: bad pair:")]
    assert len(bad) == 3
    assert any("missing sharp partner" in line and "lonely.png" in line for line in bad)
    assert any("size mismatch" in line and str(root / "seqA" / "sharp" / "mismatch.png") in line for line in bad)
    assert any("unreadable" in line and str(root / "seqB" / "blur" / "broken.png") in line for line in bad)
    assert "nafft: error: 3 bad pair(s)" in captured.err
    tiles = sorted(p.name for p in (out / "blur").iterdir())
    assert len(tiles) == 2 * 4 and tiles[0] == "seqA_good1_s001.png" and tiles[-1] == "seqB_good2_s004.png"
    assert "2 pairs, 8 tiles written, 0 already there" in captured.out

    # a re-run writes nothing new; a lost tile is redone
    (out / "sharp" / "seqB_good2_s003.png").unlink()
    stamp = (out / "blur" / "seqA_good1_s001.png").stat().st_mtime_ns
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "2 pairs, 1 tiles written, 7 already there" in captured.out
    assert (out / "blur" / "seqA_good1_s001.png").stat().st_mtime_ns == stamp
    assert (out / "sharp" / "seqB_good2_s003.png").is_file()
    assert not [p for p in (out / "blur").iterdir() if p.name.startswith(".")]


def test_prepare_cli_clean_run_exits_zero(tmp_path, capsys):
    root = _split(tmp_path)
    assert main(["prepare", "--input", str(root), "--out", str(tmp_path / "o"), "--crop", "40", "--step", "40",
                 "--workers", "1"]) == 0
    assert "4 pairs, 8 tiles written" in capsys.readouterr().out


def test_too_small_and_no_input(tmp_path, capsys):
    make_pair(tmp_path / "in", "small.png", height=20, width=20)
    jobs, problems = plan_tiles(tmp_path / "in", crop=32, step=16)
    assert jobs == [] and problems == [f"too small: {tmp_path / 'in' / 'blur' / 'small.png'} is 20x20, "
                                       "smaller than the 32x32 crop"]
    assert main(["prepare", "--input", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "nafft: error:" in capsys.readouterr().err


def test_prepare_refuses_a_folder_cut_another_way_instead_of_mixing(tmp_path, capsys):
    """`--crop 64 --step 48` then `--crop 96 --step 16` into the same folder said "27 already there" while every tile
    was 64x64; now the second run is refused before it writes anything, naming both settings."""
    root = _split(tmp_path)
    out = tmp_path / "tiles"
    first = ["prepare", "--input", str(root), "--out", str(out), "--workers", "1"]
    assert main([*first, "--crop", "32", "--step", "16"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in (out / "blur").iterdir()}
    for other in (["--crop", "40", "--step", "16"], ["--crop", "32", "--step", "8"], ["--crop", "32", "--step", "16",
                                                                                       "--thresh", "3"]):
        assert main([*first, *other]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"nafft: error: {out}: holds tiles made with --input {root.resolve()} --crop 32 "
                              "--step 16 --thresh 0; this run asks for") and len(err.splitlines()) == 1
        assert " ".join(other) in err
    assert {p.name: p.read_bytes() for p in (out / "blur").iterdir()} == before
    # the same settings still finish the folder; another input is refused too
    (out / "blur" / sorted(before)[0]).unlink()
    assert main([*first, "--crop", "32", "--step", "16"]) == 0
    assert "1 tiles written, 31 already there" in capsys.readouterr().out
    other_root = _split(tmp_path / "second")
    assert main(["prepare", "--input", str(other_root), "--out", str(out), "--crop", "32", "--step", "16"]) == 2
    assert "this run asks for --input" in capsys.readouterr().err


def test_prepare_refuses_images_without_a_record(tmp_path, capsys):
    root = _split(tmp_path)
    write_image(tmp_path / "old" / "blur" / "x_s001.png", coordinate_image(8, 8, 0), bit_depth=16)
    assert main(["prepare", "--input", str(root), "--out", str(tmp_path / "old"), "--crop", "32"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nafft: error: {tmp_path / 'old'}: holds 1 images but no prepare.json saying how they were cut (an older "
        "nafft or another tool); use another --out, or move them away"
    )
    assert sorted(p.name for p in (tmp_path / "old" / "blur").iterdir()) == ["x_s001.png"]
