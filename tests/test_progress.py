# SPDX-License-Identifier: GPL-3.0-or-later
"""A hidden progress bar imports no notebook machinery (tqdm.auto warns "IProgress not found" in a Jupyter
kernel without ipywidgets, even for a bar that is never shown)."""
from __future__ import annotations

import os
import subprocess
import sys


def test_hidden_bar_does_not_import_tqdm_auto():
    code = ("import sys\nfrom ionscope._progress import progress\n"
            "assert list(progress(range(3), enable=False)) == [0, 1, 2]\n"
            "bar = progress(total=2, enable=False); bar.update(1); bar.close()\n"
            "print(sorted(m for m in sys.modules if m in ('tqdm.auto', 'tqdm.autonotebook', 'tqdm.notebook')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, IONSCOPE_PROGRESS="0"))
    assert out.stdout.strip() == "[]", out.stdout
    assert "IProgress" not in out.stderr


def test_hidden_bar_in_a_jupyter_kernel_prints_no_warning():
    # the operando tutorial's first cell printed "TqdmWarning: IProgress not found" on the docs site
    import pytest

    jupyter_client = pytest.importorskip("jupyter_client", reason="the docs extra installs a Jupyter kernel")
    pytest.importorskip("ipykernel", reason="the docs extra installs a Jupyter kernel")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3",
                                                     env=dict(os.environ, IONSCOPE_PROGRESS="0"))
    try:
        code = ("import warnings; warnings.simplefilter('always')\n"
                "from ionscope._progress import progress\nprint(sum(progress(range(4))))")
        streams = []
        kc.execute_interactive(code, timeout=120,
                               output_hook=lambda m: streams.append(m["content"].get("text", ""))
                               if m["msg_type"] == "stream" else None)
        text = "".join(streams)
        assert "6" in text and "IProgress" not in text, text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
