"""Plots people read: accuracy bars on the full 0–1 axis with their intervals."""

from __future__ import annotations


def test_accuracy_bars_use_the_whole_axis_and_draw_the_intervals(tmp_path, monkeypatch):
    import matplotlib.axes
    import matplotlib.image

    from cotdistill.report.plots import bar_plot

    seen = {}
    real_bar = matplotlib.axes.Axes.bar

    def spy_bar(self, *args, **kwargs):
        seen["yerr"] = kwargs["yerr"]
        result = real_bar(self, *args, **kwargs)
        seen["ylim"] = self.get_ylim
        return result

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy_bar)
    bar_plot(["random", "teacher"], [0.003, 0.006], [(0.0, 0.01), (0.002, 0.012)], tmp_path / "b.png",
             ylabel="accuracy", title="t")
    assert seen["ylim"]() == (0.0, 1.0)  # not 0–0.007: the two bars look as alike as they are
    assert [list(map(float, side)) for side in seen["yerr"]] == [[0.003, 0.004], [0.007, 0.006]]
    assert matplotlib.image.imread(tmp_path / "b.png").shape[2] in (3, 4)
