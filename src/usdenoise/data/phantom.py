"""Procedural fetal-head B-mode phantom: a clean echogenicity map, its mask and its true HC.

The scene, drawn from one seed (numpy `Generator`) independently of the output size:

- maternal tissue with layered texture and a bright abdominal wall near the transducer;
- amniotic fluid (dark) around the head, with an irregular border;
- the skull: a bright elliptical ring of random size, position and angle, brightest where
  the beam meets it at right angles (top and bottom) as in real B-mode images;
- brain tissue with texture, the midline echo (falx) with the cavum septi pellucidi as a
  dark gap, and two dark lateral ventricles;
- depth attenuation (exponential in depth) and, with `fan=True`, a sector (fan) mask.

Geometry: pixels are square; the field of view is `FOV_MM` (150 mm) across the longer image
side, so `spacing_mm = FOV_MM / max(H, W)` in both directions. The head circumference is
the Ramanujan perimeter of the outer skull ellipse, in mm. Mask classes: 0 background,
1 head (inside the outer skull border); with `structures=True` also 2 midline, 3 ventricles.
The same seed gives the same scene at any size (texture is drawn on fixed-size grids).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from usdenoise.core.errors import UsdenoiseError
from usdenoise.data.transforms import as_size
from usdenoise.metrics.geometry import ellipse_perimeter

FOV_MM = 150.0
CLASS_NAMES = ("background", "head")
STRUCTURE_CLASS_NAMES = ("background", "head", "midline", "ventricles")
DEFAULT_COUNT = 100
DEFAULT_SIZE = 256


def _smooth_noise(rng: np.random.Generator, grid: int, height: int, width: int) -> np.ndarray:
    """Zero-mean, roughly unit-std smooth random field: a fixed grid, bicubic upsampled."""
    coarse = rng.standard_normal((grid, grid)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _fan_contains(x: np.ndarray, y: np.ndarray, fan: tuple[float, float, float, float, float]
                  ) -> np.ndarray:
    apex_x, apex_y, half_angle, r_min, r_max = fan
    dx, dy = x - apex_x, y - apex_y
    radius = np.hypot(dx, dy)
    angle = np.arctan2(dx, dy)
    return (np.abs(angle) <= half_angle) & (radius >= r_min) & (radius <= r_max)


def make_phantom(size: int | Sequence[int] = DEFAULT_SIZE, *, seed: int = 0, fan: bool = False,
                 structures: bool = False) -> dict[str, Any]:
    """One phantom scene.

    Returns `{"image": Tensor[1,H,W] float32 in [0,1], "mask": Tensor[H,W] int64,
    "hc_mm": float, "spacing_mm": (dy, dx), "ellipse": (cx, cy, a, b, angle_deg) in pixels
    (outer skull border, angle of the a axis from the x axis), "id", "subject", "source"}`
    and, with `fan=True`, `"fan": Tensor[H,W] bool` (the imaged sector; the image is 0 outside).
    """
    height, width = as_size(size, what="phantom size")
    if min(height, width) < 16:
        raise UsdenoiseError(f"phantom size {height}x{width}: must be at least 16x16")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UsdenoiseError(f"phantom seed {seed!r}: must be a non-negative integer")
    rng = np.random.default_rng(int(seed))
    short = min(height, width)
    unit = short / 2.0  # geometry is drawn in units of half the shorter side

    # ---- scene parameters, all drawn before any pixel work (size-independent) ----
    a = rng.uniform(0.38, 0.78)
    b = a * rng.uniform(0.72, 0.92)
    theta = rng.uniform(-math.pi / 2, math.pi / 2)
    pos = rng.uniform(-1.0, 1.0, size=2)
    thickness = rng.uniform(0.05, 0.09)
    fluid_scale = rng.uniform(1.12, 1.45, size=2)
    levels = {
        "tissue": rng.uniform(0.30, 0.45), "wall": rng.uniform(0.55, 0.75),
        "fluid": rng.uniform(0.02, 0.06), "brain": rng.uniform(0.14, 0.26),
        "skull": rng.uniform(0.85, 1.0), "midline": rng.uniform(0.45, 0.7),
        "ventricle": rng.uniform(0.03, 0.08),
    }
    wall_depth = rng.uniform(0.04, 0.12)
    band_period, band_phase = rng.uniform(0.06, 0.15), rng.uniform(0, 2 * math.pi)
    attenuation = rng.uniform(0.3, 0.9)
    vent_offset = rng.uniform(0.22, 0.32)
    vent_pos = rng.uniform(-0.45, -0.25)
    csp_pos = rng.uniform(0.15, 0.3)
    half_angle = math.radians(rng.uniform(32.0, 42.0))
    noise_seed = int(rng.integers(0, 2**31 - 1))

    # ---- place the head inside the image (and inside the fan) ----
    a_px, b_px = a * unit, b * unit
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    fan_geom = (width / 2.0, -0.12 * height, half_angle, 0.1 * height, 1.12 * height)
    t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    for _ in range(40):
        ext_x = math.sqrt((a_px * cos_t) ** 2 + (b_px * sin_t) ** 2)
        ext_y = math.sqrt((a_px * sin_t) ** 2 + (b_px * cos_t) ** 2)
        room_x = max(width / 2.0 - ext_x - 2.0, 0.0)
        room_y = max(height / 2.0 - ext_y - 2.0, 0.0)
        cx = width / 2.0 + pos[0] * room_x
        cy = height / 2.0 + pos[1] * room_y
        if room_x > 0 and room_y > 0 and not fan:
            break
        if fan:
            px = cx + a_px * np.cos(t) * cos_t - b_px * np.sin(t) * sin_t
            py = cy + a_px * np.cos(t) * sin_t + b_px * np.sin(t) * cos_t
            if room_x > 0 and room_y > 0 and _fan_contains(px, py, fan_geom).all():
                break
            pos = pos * 0.8 + np.array([0.0, 0.35]) * 0.2  # drift towards the fan's centre
        a_px, b_px = a_px * 0.93, b_px * 0.93

    # ---- pixel work ----
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    p = dx * np.float32(cos_t) + dy * np.float32(sin_t)  # along the major axis
    q = -dx * np.float32(sin_t) + dy * np.float32(cos_t)  # along the minor axis
    r = np.sqrt((p / np.float32(a_px)) ** 2 + (q / np.float32(b_px)) ** 2)
    px_per_r = np.float32(0.5 * (a_px + b_px))  # pixels per unit of elliptic radius

    noise_rng = np.random.default_rng(noise_seed)
    coarse = _smooth_noise(noise_rng, 9, height, width)
    medium = _smooth_noise(noise_rng, 33, height, width)
    fine = _smooth_noise(noise_rng, 97, height, width)

    def soft_inside(distance_px: np.ndarray) -> np.ndarray:
        """1 inside, 0 outside, a one-pixel ramp at the border (distance > 0 is inside)."""
        return np.clip(distance_px + 0.5, 0.0, 1.0)

    depth = ys / np.float32(height)
    tissue = levels["tissue"] + 0.10 * coarse + 0.05 * medium + 0.04 * fine
    tissue = tissue + 0.06 * np.sin(2 * math.pi * depth / band_period + band_phase + 0.3 * coarse)
    wall = soft_inside((wall_depth - depth) * height)
    image = tissue * (1 - wall) + (levels["wall"] + 0.05 * fine) * wall

    rf = np.sqrt((p / (a_px * fluid_scale[0])) ** 2 + (q / (b_px * fluid_scale[1])) ** 2)
    fluid = soft_inside((1.0 + 0.08 * coarse - rf) * px_per_r * fluid_scale.mean())
    image = image * (1 - fluid) + (levels["fluid"] + 0.01 * medium) * fluid

    inner = 1.0 - thickness
    brain = soft_inside((inner - r) * px_per_r)
    brain_tex = levels["brain"] + 0.06 * medium + 0.05 * fine + 0.04 * coarse
    image = image * (1 - brain) + brain_tex * brain

    # skull: brightest where its normal is vertical (beam hits it at right angles)
    gx = (p / a_px**2) * cos_t - (q / b_px**2) * sin_t
    gy = (p / a_px**2) * sin_t + (q / b_px**2) * cos_t
    facing = np.abs(gy) / (np.hypot(gx, gy) + 1e-12)
    ring_half = thickness / 2.0
    skull = soft_inside((ring_half - np.abs(r - (1.0 - ring_half))) * px_per_r)
    skull_val = levels["skull"] * (0.55 + 0.45 * facing) + 0.03 * fine
    image = image * (1 - skull) + skull_val * skull

    # midline (falx) along the major axis, with the cavum septi pellucidi as a dark gap
    line_w = max(0.012 * b_px, 0.6)
    inner_a = inner * a_px
    mid_len = 0.82 * inner_a
    midline = soft_inside(line_w - np.abs(q)) * soft_inside(mid_len - np.abs(p))
    csp = (soft_inside(0.07 * b_px - np.abs(q))
           * soft_inside(0.08 * inner_a - np.abs(p - csp_pos * inner_a)))
    midline = midline * (1 - csp) * brain
    image = image * (1 - midline) + levels["midline"] * midline
    image = image * (1 - csp * brain) + levels["ventricle"] * csp * brain

    # lateral ventricles: two small dark ellipses either side of the midline
    vent_a, vent_b = 0.20 * inner_a, 0.07 * b_px
    vent = np.zeros_like(r)
    for side in (-1.0, 1.0):
        vp = p - vent_pos * inner_a
        vq = q - side * vent_offset * b_px
        vr = np.sqrt((vp / vent_a) ** 2 + (vq / vent_b) ** 2)
        vent = np.maximum(vent, soft_inside((1.0 - vr) * vent_b))
    vent = vent * brain
    image = image * (1 - vent) + levels["ventricle"] * vent

    image = image * np.exp(-attenuation * depth)
    fan_mask = None
    if fan:
        fan_mask = _fan_contains(xs, ys, fan_geom)
        image = image * fan_mask
    image = np.clip(image, 0.0, 1.0).astype(np.float32)

    mask = (r <= 1.0).astype(np.int64)
    if structures:
        mask[(midline > 0.5) & (mask == 1)] = 2
        mask[(vent > 0.5) & (mask == 1)] = 3

    spacing = FOV_MM / max(height, width)
    sample: dict[str, Any] = {
        "image": torch.from_numpy(image)[None],
        "mask": torch.from_numpy(mask),
        "id": f"phantom_{int(seed)}",
        "subject": f"phantom_{int(seed)}",
        "spacing_mm": (spacing, spacing),
        "hc_mm": ellipse_perimeter(a_px * spacing, b_px * spacing),
        "ellipse": (float(cx), float(cy), float(a_px), float(b_px), math.degrees(theta)),
        "source": f"phantom:seed={int(seed)}",
    }
    if fan_mask is not None:
        sample["fan"] = torch.from_numpy(np.ascontiguousarray(fan_mask))
    return sample


def item_seed(seed: int, index: int) -> int:
    """Seed of image `index` in a phantom data set seeded with `seed` (independent streams)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class PhantomDataset(torch.utils.data.Dataset):
    """Built-in procedural fetal-head phantom (no files needed); each image is its own subject."""

    name = "phantom"
    summary = "built-in procedural fetal-head phantom: phantom or phantom:N (N images)"

    def __init__(self, count: int = DEFAULT_COUNT, *, size: int | Sequence[int] | None = None,
                 seed: int = 0, fan: bool = False, structures: bool = False):
        if not isinstance(count, (int, np.integer)) or count < 1:
            raise UsdenoiseError(f"phantom:{count}: the number of images must be at least 1")
        self.count = int(count)
        self.size = as_size(size if size is not None else DEFAULT_SIZE, what="size")
        self.seed = int(seed)
        self.fan = fan
        self.structures = structures
        self.class_names = STRUCTURE_CLASS_NAMES if structures else CLASS_NAMES
        self.num_classes = len(self.class_names)
        self.ids = [f"phantom_{i:05d}" for i in range(self.count)]
        self.subjects = list(self.ids)
        self.spec = f"phantom:{self.count}"

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.count <= index < self.count:
            raise IndexError(index)
        index %= self.count
        sample = make_phantom(self.size, seed=item_seed(self.seed, index), fan=self.fan,
                              structures=self.structures)
        sample["id"] = sample["subject"] = self.ids[index]
        sample["source"] = f"phantom:seed={self.seed}:index={index}"
        return sample
