"""``ionscope info`` wraps long metadata values at word boundaries under their key, never mid-word."""
import numpy as np
import xarray as xr

from ionscope.io import info


def test_long_metadata_wraps_under_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    words = [f"word{i:02d}" for i in range(20)]  # 139 characters: under the 200 kept
    da = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), name="m",
                      attrs={"units": "counts", "note": " ".join(words)})
    path = tmp_path / "m.nc"
    da.to_netcdf(path)
    lines = info(path).splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("note: "))
    indent = lines[start].index("note: ") + len("note: ")
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * indent) or line[indent:indent + 1] == " ":
            break
        block.append(line)
    assert len(block) > 1  # it did wrap
    assert all(len(line) <= 59 for line in block)
    assert " ".join(line.strip() for line in block).removeprefix("note: ").split() == words
