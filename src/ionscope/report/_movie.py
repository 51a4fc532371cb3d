# SPDX-License-Identifier: GPL-3.0-or-later
"""MP4 and GIF movies of Li-map series with time, voltage and state annotated.

Frames are drawn once with matplotlib (one figure re-used: only the image data
and the caption change per frame, which is ~10× faster than a new figure per
frame) and encoded with imageio: MP4 through imageio-ffmpeg's bundled ffmpeg
(H.264), GIF through Pillow. Files are written atomically.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import DataValidationError, ShapeMismatchError


def _limits(stacks: Sequence[np.ndarray], *, bounds=None, symmetric: bool = False):
    """One colour scale for all panels (so they compare directly): the 1st–99th
    percentiles of the least noisy panel (lowest frame-to-frame spread), since a
    raw panel's noise would stretch the scale and wash out a denoised one; within
    the physical ``bounds``. The clipped shares are counted over every panel."""
    from ._style import colour_scale

    finite = [np.asarray(s, float)[np.isfinite(s)] for s in stacks]
    if not any(v.size for v in finite):
        raise DataValidationError("movie: no finite value to show")
    noise = [np.nanstd(np.diff(np.asarray(s, float), axis=0)) if s.shape[0] > 1 else 0.0 for s in stacks]
    values = finite[int(np.argmin(noise))] if all(v.size for v in finite) else np.concatenate(finite)
    base = colour_scale(values, bounds=bounds, symmetric=symmetric)
    return colour_scale(np.concatenate(finite), bounds=bounds, vmin=base.vmin, vmax=base.vmax)


def render_frames(panels: dict[str, np.ndarray], captions: Sequence[str], *, cmap: str = "viridis",
                  label: str = "Li", scale_px: float = 3.0, pixel_nm: float | None = None,
                  bounds=None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames: the (time, y, x) stacks side by side with a caption.

    Parameters
    ----------
    panels : dict title → ndarray (time, y, x)
        Same shape each (e.g. raw and denoised Li maps).
    captions : sequence of str
        One caption per frame (time, voltage, state ...).
    cmap : str
        Matplotlib colormap.
    label : str
        Colour-bar label (quantity and unit).
    scale_px : float
        Screen pixels per map pixel (at least 240 px tall images).
    pixel_nm : float, optional
        Pixel size in nm: a scale bar is drawn on every panel.
    bounds : (lo, hi), optional
        Physical bounds of the quantity (``(0, 1)`` for x in LixCoO2): the
        colour scale stays within them and the share of pixels outside is
        written under the panels. Colours clipped at either end are marked by
        extend arrows on the colour bar.

    Yields
    ------
    ndarray
        ``(height, width, 3)`` uint8 RGB, one per frame (every frame the same size).

    Notes
    -----
    Drawn on a figure of its own (Agg canvas, no pyplot) in the house style
    (:func:`ionscope.report._style.style`) entered around each drawing step
    only: a caller iterating the frames never sees changed rcParams.

    Examples
    --------
    >>> import numpy as np
    >>> maps = np.random.default_rng(0).random((2, 8, 8))
    >>> frames = list(render_frames({"raw": maps, "denoised": maps}, ["a", "b"], pixel_nm=2.0))
    >>> len(frames), frames[0].dtype.name, frames[0].shape[2]
    (2, 'uint8', 3)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ._style import colour_bar, scale_bar, style, subplots

    stacks = [np.asarray(v, float) for v in panels.values()]
    shape = stacks[0].shape
    if any(s.shape != shape for s in stacks) or len(shape) != 3:
        raise ShapeMismatchError(
            f"movie: every panel must be (time, y, x) of one shape, got {[s.shape for s in stacks]}")
    if len(captions) != shape[0]:
        raise ShapeMismatchError(f"movie: {len(captions)} captions for {shape[0]} frames")
    sc = _limits(stacks, bounds=bounds)
    ny, nx = shape[1:]
    zoom = max(scale_px, 240.0 / ny)
    dpi = 100
    # the share of each panel's pixels (over the whole movie) outside the physical bounds
    from ._style import colour_scale

    name = "x" if bounds is not None and tuple(bounds) == (0.0, 1.0) else "value"
    parts = [f"{title}: {colour_scale(st, bounds=bounds).outside(name)}" for title, st in zip(panels, stacks)
             if bounds is not None and colour_scale(st, bounds=bounds).outside(name)]
    note = ("pixels outside the physical range (drawn in the end colours) — " + "; ".join(parts)) if parts else ""
    w_in = len(stacks) * nx * zoom / dpi + 1.2
    h_in = ny * zoom / dpi + 0.9 + (0.25 if note else 0.0)
    fig, axes = subplots(1, len(stacks), figsize=(w_in, h_in), dpi=dpi, squeeze=False)
    canvas = FigureCanvasAgg(fig)
    images = []
    with style():
        for ax, title, st in zip(axes[0], panels, stacks):
            # y downward (origin upper), as in every ionscope map: the electrolyte stays at the top
            ext = None if pixel_nm is None else (0.0, nx * pixel_nm, ny * pixel_nm, 0.0)
            images.append(ax.imshow(st[0], cmap=cmap, vmin=sc.vmin, vmax=sc.vmax, interpolation="nearest",
                                    extent=ext, origin="upper"))
            ax.set_title(title, fontsize=10)
            ax.set_axis_off()
            if ext is not None:
                scale_bar(ax, ext)
        colour_bar(fig, images[-1], sc, ax=list(axes[0]), shrink=0.8, label=label)
        text = fig.suptitle(captions[0], fontsize=10)
        if note:
            fig.text(0.5, 0.02, note, ha="center", va="bottom", fontsize=8)
    try:
        for t in range(shape[0]):
            for im, st in zip(images, stacks):
                im.set_data(st[t])
            text.set_text(captions[t])
            with style():
                canvas.draw()
            rgb = np.asarray(canvas.buffer_rgba())[..., :3]
            yield _pad16(rgb)
    finally:
        fig.clear()


def _pad16(rgb: np.ndarray) -> np.ndarray:
    """Pad to multiples of 16 px with white: H.264 in yuv420p needs even sizes, and
    16 avoids imageio-ffmpeg resizing (and warning about) the frame."""
    h, w = rgb.shape[:2]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), constant_values=255)
    return np.ascontiguousarray(rgb)


def write_movie(path, frames: Sequence[np.ndarray] | Iterator[np.ndarray], *, fps: float = 6.0) -> Path:
    """Encode RGB frames as ``.mp4`` (H.264) or ``.gif`` (looping), atomically.

    Parameters
    ----------
    path : str or Path
        The ``.mp4`` or ``.gif`` to write.
    frames : sequence or iterator of ndarray
        ``(height, width, 3)`` uint8 RGB frames of one size.
    fps : float
        Frames per second.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.gif"
    >>> frames = [np.full((16, 16, 3), v, np.uint8) for v in (0, 128, 255)]
    >>> write_movie(p, frames, fps=2).stat().st_size > 0
    True
    """
    import imageio.v3 as iio3

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".mp4", ".gif"):
        raise DataValidationError(f"{path}: movie format must be .mp4 or .gif, got {ext!r}")
    if fps <= 0:
        raise DataValidationError(f"write_movie: fps must be > 0, got {fps}")
    with atomic_path(path) as tmp:
        if ext == ".mp4":
            _write_mp4(tmp, frames, fps=fps)
        else:
            stack = np.stack(list(frames))
            iio3.imwrite(tmp, stack, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def _write_mp4(path: Path, frames, *, fps: float) -> None:
    """H.264 through imageio-ffmpeg's bundled ffmpeg binary.

    Its low-level ``write_frames`` is used because the temporary path of an
    atomic write has no ``.mp4`` suffix to pick the container from; ``-f mp4``
    names it explicitly.
    """
    import imageio_ffmpeg

    it = iter(frames)
    try:
        first = next(it)
    except StopIteration:
        raise DataValidationError(f"{path}: no frame to write") from None
    h, w = first.shape[:2]
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                      pix_fmt_out="yuv420p", quality=8, macro_block_size=16,
                                      output_params=["-f", "mp4"], ffmpeg_log_level="error")
    gen.send(None)
    try:
        gen.send(np.ascontiguousarray(first, dtype=np.uint8))
        for f in it:
            if f.shape[:2] != (h, w):
                raise ShapeMismatchError(f"{path}: frame size {f.shape[:2]} differs from the first {(h, w)}")
            gen.send(np.ascontiguousarray(f, dtype=np.uint8))
    finally:
        gen.close()


def li_movie(path, panels: dict[str, np.ndarray], captions: Sequence[str], *, fps: float = 6.0, **kwargs) -> Path:
    """Render and encode a Li-map movie in one call (see :func:`render_frames`).

    Parameters
    ----------
    path : str or Path
        The ``.mp4`` or ``.gif`` to write (atomically).
    panels : dict of str to ndarray
        ``(time, y, x)`` stacks shown side by side, by title.
    captions : sequence of str
        One caption per frame.
    fps : float
        Frames per second.
    **kwargs
        Passed to :func:`render_frames` (``cmap``, ``label``, ``pixel_nm``, ``bounds``, ...).

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> maps = np.random.default_rng(0).random((3, 8, 8))
    >>> p = li_movie(pathlib.Path(tempfile.mkdtemp()) / "li.gif", {"raw": maps}, ["0 min", "1 min", "2 min"])
    >>> p.suffix, p.stat().st_size > 0
    ('.gif', True)
    """
    return write_movie(path, render_frames(panels, captions, **kwargs), fps=fps)
