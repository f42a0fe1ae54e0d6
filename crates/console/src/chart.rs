//! Utilization charts as inline SVG (no script, no chart library): one line per series of
//! `(epoch seconds, percent)` points over a time window, a percent axis from 0 to at least 100,
//! and the window's start and end times. A chart with no point at all is not drawn
//! ([`line_chart`] answers `None`), so a page says there is no data rather than drawing an
//! empty or made-up line.

use crate::format::clock;
use crate::html::esc;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend (`CPU`, `Memory`).
    pub label: String,
    /// `(epoch seconds, percent)`, any order.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
/// The line colours, in series order.
const COLOURS: [&str; 4] = ["#2563eb", "#d97706", "#059669", "#7c3aed"];

/// The top of the percent axis: 100, or the largest value rounded up to a multiple of 25 (CPU
/// utilization exceeds 100% when containers have no hard CPU limit).
pub fn y_max(series: &[Series]) -> f64 {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if max <= 100.0 {
        100.0
    } else {
        (max / 25.0).ceil() * 25.0
    }
}

/// The SVG of `series` over `[start, end)` (epoch seconds), titled `title`; `None` when no series
/// has a point in the window.
pub fn line_chart(title: &str, series: &[Series], start: f64, end: f64) -> Option<String> {
    let in_window = |p: &&(f64, f64)| p.0 >= start && p.0 < end && p.1.is_finite();
    if !series
        .iter()
        .any(|s| s.points.iter().any(|p| in_window(&p)))
        || end <= start
    {
        return None;
    }
    let top = y_max(series);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + (t - start) / (end - start) * plot_w;
    let y = |v: f64| TOP + plot_h - (v.max(0.0) / top) * plot_h;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = esc(title)
    );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{v:.0}%</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            y = y(v),
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"{:.1}\" class=\"axis\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
        HEIGHT - 6.0,
        clock(start),
        WIDTH - RIGHT,
        HEIGHT - 6.0,
        clock(end),
    ));
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points: Vec<(f64, f64)> = s.points.iter().filter(in_window).copied().collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let coords: Vec<String> = points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        if coords.len() == 1 {
            // One point is a dot, not a line.
            let (t, v) = points[0];
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(t),
                y(v)
            ));
        } else if !coords.is_empty() {
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                coords.join(" ")
            ));
        }
        let last = points
            .last()
            .map(|(_, v)| format!(" {v:.1}%"))
            .unwrap_or_default();
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"legend\" fill=\"{colour}\">{}{}</text>",
            LEFT + 8.0 + 150.0 * i as f64,
            TOP + 12.0,
            esc(&s.label),
            last
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(label: &str, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.to_string(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn no_point_in_the_window_draws_nothing() {
        assert_eq!(line_chart("t", &[], 0.0, 60.0), None);
        assert_eq!(
            line_chart("t", &[series("CPU", &[(100.0, 5.0)])], 0.0, 60.0),
            None
        );
        assert_eq!(
            line_chart("t", &[series("CPU", &[(10.0, 5.0)])], 60.0, 0.0),
            None
        );
    }

    #[test]
    fn lines_are_drawn_in_time_order_within_the_plot() {
        let svg = line_chart(
            "CPU <and> memory",
            &[
                series("CPU", &[(30.0, 50.0), (0.0, 0.0), (59.0, 100.0)]),
                series("Memory", &[(0.0, 10.0)]),
            ],
            0.0,
            60.0,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<title>CPU &lt;and&gt; memory</title>"));
        // 0% at the bottom of the plot (y = 156), 100% at the top (y = 10), left to right.
        assert!(
            svg.contains("points=\"40.0,156.0 315.0,83.0 580.8,10.0\""),
            "{svg}"
        );
        // A single point is a dot; the legend shows the last value.
        assert!(svg.contains("<circle cx=\"40.0\" cy=\"141.4\""), "{svg}");
        assert!(svg.contains(">CPU 100.0%</text>"));
        assert!(svg.contains(">Memory 10.0%</text>"));
    }

    #[test]
    fn the_axis_grows_past_100_percent() {
        assert_eq!(y_max(&[series("CPU", &[(0.0, 40.0)])]), 100.0);
        assert_eq!(y_max(&[series("CPU", &[(0.0, 180.0)])]), 200.0);
        assert_eq!(y_max(&[series("CPU", &[(0.0, f64::NAN)])]), 100.0);
    }
}
