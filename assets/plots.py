"""Small matplotlib line plots as PNG bytes and as markdown that shows the picture in the Dagster UI."""

import base64
import io
from collections.abc import Sequence


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float | None]]], *, xlabel: str, ylabel: str,
              ylim: tuple[float, float] | None = None, dashed: Sequence[str] = ()) -> bytes:
    """``series``: name -> (x, y); None values are left out of their line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for name, (xs, ys) in series.items():
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None,
                    linestyle="--" if name in dashed else "-", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def histogram(groups: dict[str, Sequence[float]], *, xlabel: str, bins: int = 20) -> bytes:
    """Overlaid histograms of ``groups`` (name -> values) over shared bins, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [v for vs in groups.values() for v in vs]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    if values:
        lo, hi = min(values), max(values)
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)] if hi > lo else bins
        for name, vs in groups.items():
            if vs:
                ax.hist(list(vs), bins=edges, alpha=0.6, label=f"{name} (n={len(vs)})")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
