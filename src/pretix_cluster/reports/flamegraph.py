"""Flame graphs from collapsed stacks (py-spy's ``raw`` format), as standalone SVG files.

A collapsed stack is one line per distinct stack, outermost frame first:
``frame;frame;frame count``. The graph stacks each frame's box on its caller's,
as wide as its share of all samples; boxes narrower than ``MIN_SHARE`` are left
out (they could not be read, and thousands of them make a heavy file). This
module lays the boxes out; ``flamegraph.svg.j2`` draws them, each with its
frame, sample count and share as a tooltip.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping

from pretix_cluster import reports

WIDTH = 1200.0  # pixels
ROW = 17  # pixels per stack level
MIN_SHARE = 0.002  # narrower frames are dropped
LABEL_CHARS_PER_PX = 1 / 7  # roughly, at the 11 px font


@dataclasses.dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    frame: str
    samples: int
    share: float
    color: str
    label: str  # the frame shortened to fit its box ("" if none fits)


@dataclasses.dataclass(frozen=True)
class FlameGraph:
    title: str
    total: int
    width: float
    height: float
    boxes: tuple[Box, ...]


@dataclasses.dataclass
class _Node:
    samples: int = 0
    children: dict[str, _Node] = dataclasses.field(default_factory=dict)


def _tree(stacks: Mapping[tuple[str, ...], int]) -> _Node:
    root = _Node()
    for frames, count in stacks.items():
        root.samples += count
        node = root
        for frame in frames:
            node = node.children.setdefault(frame, _Node())
            node.samples += count
    return root


def _color(frame: str) -> str:
    """A warm colour that stays the same for the same function across graphs."""
    h = zlib.crc32(frame.split(" (")[0].encode())
    return f"rgb(230,{110 + h % 110},{40 + (h >> 8) % 50})"


def _label(frame: str, width: float) -> str:
    chars = int(width * LABEL_CHARS_PER_PX)
    if chars < 4:
        return ""
    return frame if len(frame) <= chars else frame[: chars - 2] + ".."


def layout(title: str, stacks: Mapping[tuple[str, ...], int]) -> FlameGraph:
    """The boxes of the flame graph of ``stacks`` (frames outermost first)."""
    root = _tree(stacks)
    boxes: list[Box] = []
    depth = 0

    def place(node: _Node, frame: str, x: float, level: int) -> None:
        nonlocal depth
        width = WIDTH * node.samples / root.samples
        depth = max(depth, level)
        boxes.append(
            Box(
                x=round(x, 2),
                y=level,  # turned into pixels below, once the depth is known
                width=round(width, 2),
                frame=frame,
                samples=node.samples,
                share=node.samples / root.samples,
                color=_color(frame),
                label=_label(frame, width),
            )
        )
        child_x = x
        for name, child in sorted(node.children.items()):
            if child.samples / root.samples >= MIN_SHARE:
                place(child, name, child_x, level + 1)
            child_x += WIDTH * child.samples / root.samples

    if root.samples:
        place(root, "all", 0.0, 0)
    height = (depth + 1) * ROW
    boxes = [dataclasses.replace(b, y=height - (b.y + 1) * ROW) for b in boxes]
    return FlameGraph(
        title=title, total=root.samples, width=WIDTH, height=height, boxes=tuple(boxes)
    )


def svg(graph: FlameGraph) -> str:
    return reports.render("flamegraph.svg.j2", graph=graph)
