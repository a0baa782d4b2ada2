//! The report as an SVG chart (plotters, SVG backend only): the share of requests each
//! server got under each algorithm, and beside it the latency percentiles per algorithm
//! (log scale), or the keys moved when the goal is keys moved; the advice on top.

use plotters::prelude::*;

use super::report::{Report, fmt_time};
use super::workload::Goal;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Words into lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line");
        // A unit stays with its number ("24.18 s)," is not broken before "s),").
        let unit = ["us", "ms", "s"]
            .iter()
            .any(|u| word.trim_end_matches([')', ',', '.', ';']) == *u);
        if !last.is_empty() && last.len() + 1 + word.len() > width && !unit {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

type Fail = Box<dyn std::error::Error>;

/// The chart of `report` as SVG text.
pub fn svg(report: &Report) -> Result<String, String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| format!("cannot draw the chart: {e}"))?;
    Ok(out)
}

fn draw(report: &Report, out: &mut String) -> Result<(), Fail> {
    let advice = wrap(&report.advice(), 150);
    let head = 30 + 18 * advice.len() as u32;
    let root = SVGBackend::with_string(out, (1100, 440 + head)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(head);
    top.draw(&Text::new(
        report.title.clone(),
        (10, 8),
        ("sans-serif", 16).into_font().style(FontStyle::Bold),
    ))?;
    for (i, line) in advice.iter().enumerate() {
        top.draw(&Text::new(
            line.clone(),
            (10, 30 + 18 * i as i32),
            ("sans-serif", 14),
        ))?;
    }
    let (left, right) = body.split_horizontally(560);
    shares(report, &left)?;
    if report.goal == Goal::KeysMoved {
        keys(report, &right)?;
    } else {
        latency(report, &right)?;
    }
    root.present()?;
    Ok(())
}

fn shares<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let Some(first) = report.results.first() else {
        return Ok(());
    };
    let n = first.servers.len();
    let k = report.results.len();
    let share = |r: &super::report::AlgoResult, i: usize| {
        let total: u64 = r.servers.iter().map(|s| s.requests).sum::<u64>().max(1);
        r.servers[i].requests as f64 / total as f64 * 100.0
    };
    let top = report
        .results
        .iter()
        .flat_map(|r| (0..n).map(move |i| share(r, i)))
        .fold(1.0f64, f64::max)
        * 1.15;
    let names: Vec<String> = first.servers.iter().map(|s| s.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption("share of requests per server (%)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    let few = n <= 16;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(if few { n * 2 + 1 } else { 10 })
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if few && (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else if !few && (x - x.floor()).abs() < 0.01 {
                format!("{i}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (a, r) in report.results.iter().enumerate() {
        let color = PALETTE[a % PALETTE.len()];
        let series = if few {
            let w = 0.8 / k as f64;
            chart.draw_series((0..n).map(|i| {
                let x0 = i as f64 + 0.1 + a as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.92, share(r, i))], color.filled())
            }))?
        } else {
            chart.draw_series(LineSeries::new(
                (0..n).map(|i| (i as f64 + 0.5, share(r, i))),
                color.stroke_width(2),
            ))?
        };
        series
            .label(r.algorithm.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn latency<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let k = report.results.len();
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).max(0.001);
    let top = report
        .results
        .iter()
        .map(|r| ms(r.latency.p999))
        .fold(0.01f64, f64::max)
        * 6.0;
    let bottom = report
        .results
        .iter()
        .map(|r| ms(r.latency.p50))
        .fold(f64::INFINITY, f64::min)
        .min(top / 4.0)
        / 2.0;
    let names: Vec<&str> = report
        .results
        .iter()
        .map(|r| r.algorithm.as_str())
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency per algorithm: p50, p99, p999 (ms, log scale)",
            ("sans-serif", 15),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(54)
        .build_cartesian_2d(0f64..k as f64, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(k * 2 + 1)
        .x_label_formatter(&|x| {
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names
                    .get(x.floor() as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    let shades = [0.35, 0.7, 1.0];
    for (p, label) in ["p50", "p99", "p999"].iter().enumerate() {
        let base = RGBColor(31, 119, 180);
        let color = base.mix(shades[p]);
        chart
            .draw_series(report.results.iter().enumerate().map(|(a, r)| {
                let v = [r.latency.p50, r.latency.p99, r.latency.p999][p];
                let x0 = a as f64 + 0.12 + p as f64 * 0.26;
                Rectangle::new([(x0, bottom), (x0 + 0.24, ms(v))], color.filled())
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(report.results.iter().enumerate().map(|(a, r)| {
            let v = [r.latency.p50, r.latency.p99, r.latency.p999][p];
            let x0 = a as f64 + 0.12 + p as f64 * 0.26;
            Text::new(
                fmt_time(v).replace(' ', ""),
                (x0, ms(v) * 1.15),
                ("sans-serif", 9),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

fn keys<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let rows: Vec<_> = report
        .results
        .iter()
        .filter_map(|r| r.keys_moved.map(|k| (r.algorithm.as_str(), k)))
        .collect();
    let k = rows.len().max(1);
    let leaving = report.leaving.as_deref().unwrap_or("a server");
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("keys moved when {leaving} leaves (%)"),
            ("sans-serif", 15),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..k as f64, 0f64..100f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(k * 2 + 1)
        .x_label_formatter(&|x| {
            if (x - x.floor() - 0.5).abs() < 0.01 {
                rows.get(x.floor() as usize)
                    .map(|r| r.0.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    type Get = fn(&super::report::KeysMoved) -> f64;
    let parts: [(&str, RGBColor, Get); 2] = [
        ("removed from the config", PALETTE[3], |k| k.removed),
        ("marked down", PALETTE[2], |k| k.down),
    ];
    for (p, (label, color, get)) in parts.into_iter().enumerate() {
        chart
            .draw_series(rows.iter().enumerate().map(|(a, (_, km))| {
                let x0 = a as f64 + 0.15 + p as f64 * 0.36;
                Rectangle::new([(x0, 0.0), (x0 + 0.33, get(km) * 100.0)], color.filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(rows.iter().enumerate().map(|(a, (_, km))| {
            let x0 = a as f64 + 0.15 + p as f64 * 0.36;
            Text::new(
                format!("{:.1}%", get(km) * 100.0),
                (x0, get(km) * 100.0 + 4.0),
                ("sans-serif", 10),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_advice_wraps() {
        let lines = super::wrap("a bb ccc dddd", 6);
        assert_eq!(lines, ["a bb", "ccc", "dddd"]);
    }
}
