# SPDX-License-Identifier: GPL-3.0-or-later
"""The simulated LiCoO2 film: its microstructure and the finite-volume operators of Li diffusion in it.

Voronoi grains with 1-px fast boundaries, a rough Li-poor interface layer
(LiCoO2 + Co3O4), a FIB-wedge thickness and the Co density; a 2-D diffusion
tensor per grain (fast along the CoO2 layers, slow across them), isotropic on
boundaries and in the layer. See :mod:`ionscope.simulate._transport` for the
equation and its discretisation.

References
----------
J. Crank, *The Mathematics of Diffusion*, 2nd ed., Oxford (1975) (anisotropic diffusion tensors).
Y. Nomura et al., Nat. Commun. 11 (2020) 2824, doi:10.1038/s41467-020-16622-w (the film and its layer).
"""
from __future__ import annotations

import numpy as np

#: Co (and Li-site) number density of LiCoO2 in nm^-3: Z = 3 formula units in the
#: hexagonal cell a = 2.816 Å, c = 14.05 Å (Mizushima 1980; V = 96.5 Å^3).
RHO_CO_NM3 = 3.0 / (np.sqrt(3.0) / 2.0 * 0.2816**2 * 1.405)
#: Co density of Co3O4 relative to LiCoO2 (24 Co in a = 8.08 Å spinel cell).
CO3O4_RELATIVE_CO = (24.0 / 0.808**3) / RHO_CO_NM3


def _smooth_noise(rng, shape, scale_px):
    """Unit-variance, zero-mean random field with correlation length ~scale_px (Gaussian filtered)."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), scale_px, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _microstructure(rng, ny, nx, pixel_nm, grain_size_nm, layer_nm, thickness_nm, f_co3o4):
    """Voronoi grains, 1-px boundaries, interface layer, thickness and Co density maps."""
    from scipy.spatial import cKDTree

    n_grains = max(1, int(round(ny * nx * pixel_nm**2 / grain_size_nm**2)))
    seeds = rng.uniform([0.0, 0.0], [ny, nx], size=(n_grains, 2))
    yy, xx = np.meshgrid(np.arange(ny) + 0.5, np.arange(nx) + 0.5, indexing="ij")
    _, grains = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    grains = grains.reshape(ny, nx).astype(np.int32)
    boundaries = np.zeros((ny, nx), bool)
    dy = grains[1:, :] != grains[:-1, :]
    dx = grains[:, 1:] != grains[:, :-1]
    boundaries[1:, :] |= dy
    boundaries[:, 1:] |= dx
    # CoO2-layer orientation of each grain in the image plane
    angles = rng.uniform(0.0, np.pi, n_grains)
    # interface layer depth: layer_nm with a gentle roughness of ±20 % along x
    rough = 1.0 + 0.2 * np.clip(_smooth_noise(rng, (1, nx), max(nx / 8.0, 1.0))[0], -1.5, 1.5) / 1.5
    depth_nm = layer_nm * rough
    layer = (yy * pixel_nm) <= depth_nm[None, :]
    # the layer holds Co3O4 where Li sites are absent; no grain boundaries are resolved inside it
    boundaries &= ~layer
    # specimen thickness: a FIB wedge along x plus mild roughness
    thick = thickness_nm * (1.0 + 0.15 * (xx / nx - 0.5) + 0.04 * _smooth_noise(rng, (ny, nx), 3.0))
    # Co density relative to LiCoO2: Co3O4 holds more Co per volume
    co = np.where(layer, (1.0 - f_co3o4) + f_co3o4 * CO3O4_RELATIVE_CO, 1.0)
    return grains, boundaries, angles, layer, thick, co


def _face_operators(ny, nx, h):
    """Sparse gradient operators on y- and x-faces, and transverse gradients averaged onto them."""
    import scipy.sparse as sp

    idx = np.arange(ny * nx).reshape(ny, nx)
    # y-faces between (i, j) and (i+1, j)
    a, b = idx[:-1, :].ravel(), idx[1:, :].ravel()
    nfy = a.size
    rows = np.arange(nfy)
    gy = sp.csr_matrix((np.r_[-np.ones(nfy), np.ones(nfy)] / h, (np.r_[rows, rows], np.r_[a, b])),
                       shape=(nfy, ny * nx))
    # ∂θ/∂x on a y-face: centred difference, averaged over the two cells (one-sided at the x edges)
    jj = np.broadcast_to(np.arange(nx), (ny - 1, nx))
    ii = np.broadcast_to(np.arange(ny - 1)[:, None], (ny - 1, nx))
    jp, jm = np.minimum(jj + 1, nx - 1), np.maximum(jj - 1, 0)
    w = (1.0 / (2.0 * (jp - jm) * h)).ravel()
    r4 = np.tile(rows, 4)
    c4 = np.r_[idx[ii, jp].ravel(), idx[ii + 1, jp].ravel(), idx[ii, jm].ravel(), idx[ii + 1, jm].ravel()]
    cxy = sp.csr_matrix((np.r_[w, w, -w, -w], (r4, c4)), shape=(nfy, ny * nx))
    # x-faces between (i, j) and (i, j+1)
    a, b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    nfx = a.size
    rows = np.arange(nfx)
    gx = sp.csr_matrix((np.r_[-np.ones(nfx), np.ones(nfx)] / h, (np.r_[rows, rows], np.r_[a, b])),
                       shape=(nfx, ny * nx))
    ii = np.broadcast_to(np.arange(ny)[:, None], (ny, nx - 1))
    jj = np.broadcast_to(np.arange(nx - 1), (ny, nx - 1))
    ip, im = np.minimum(ii + 1, ny - 1), np.maximum(ii - 1, 0)
    w = (1.0 / (2.0 * (ip - im) * h)).ravel()
    r4 = np.tile(rows, 4)
    c4 = np.r_[idx[ip, jj].ravel(), idx[ip, jj + 1].ravel(), idx[im, jj].ravel(), idx[im, jj + 1].ravel()]
    cyx = sp.csr_matrix((np.r_[w, w, -w, -w], (r4, c4)), shape=(nfx, ny * nx))
    return gy, cxy, gx, cyx


def _operators(p, grains, boundaries, angles, layer, cap):
    """Face operators of the flux (-J_y, -J_x) and the divergence ∇·(sD∇θ) of the diffusion tensor field."""
    from scipy.sparse import diags

    # diffusion tensor field (nm^2/s): rotated (fast, slow) per grain; isotropic on boundaries/layer
    phi = angles[grains]
    c, s_ = np.cos(phi), np.sin(phi)
    dxx = p.d_fast * c**2 + p.d_slow * s_**2
    dyy = p.d_fast * s_**2 + p.d_slow * c**2
    dxy = (p.d_fast - p.d_slow) * c * s_
    for mask, d_iso in ((boundaries, p.d_gb), (layer, p.d_layer)):
        dxx = np.where(mask, d_iso, dxx)
        dyy = np.where(mask, d_iso, dyy)
        dxy = np.where(mask, 0.0, dxy)
    k = {name: cap * d for name, d in (("xx", dxx), ("yy", dyy), ("xy", dxy))}
    # face coefficients: harmonic mean of the two cells' s·D for the normal component (fluxes
    # across a face pass through both half-cells in series, so a fast boundary pixel does not
    # speed up its slow neighbour), arithmetic mean for the transverse (cross) term
    def harmonic(a, b):
        return 2.0 * a * b / (a + b)

    kyy_f = harmonic(k["yy"][:-1], k["yy"][1:])
    kyx_f = 0.5 * (k["xy"][:-1] + k["xy"][1:])
    kxx_f = harmonic(k["xx"][:, :-1], k["xx"][:, 1:])
    kxy_f = 0.5 * (k["xy"][:, :-1] + k["xy"][:, 1:])
    gy, cxy, gx, cyx = _face_operators(p.ny, p.nx, p.pixel_nm)
    jy_op = (diags(kyy_f.ravel()) @ gy + diags(kyx_f.ravel()) @ cxy).tocsr()  # -J_y on y-faces
    jx_op = (diags(kxx_f.ravel()) @ gx + diags(kxy_f.ravel()) @ cyx).tocsr()  # -J_x on x-faces
    lap = -(gy.T @ jy_op + gx.T @ jx_op)  # ∇·(sD∇θ)
    return jy_op, jx_op, lap
