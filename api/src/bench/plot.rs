//! PNG plots of benchmark results, drawn with `plotters` and a font embedded in the binary
//! (DejaVu Sans Mono, `api/assets/`, Bitstream Vera licence beside it): nothing is looked up
//! on the machine, so a plot looks the same everywhere.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::append::AppendRow;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

/// Commands/s and p99 latency against concurrent clients, Plinth beside the baseline.
pub(crate) fn append(rows: &[AppendRow], path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!rows.is_empty(), "nothing to plot");
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the embedded font is unreadable"))?;
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        "commands/s",
        rows,
        |r| r.commands_per_s,
        |r| r.baseline_per_s,
    )?;
    panel(
        &right,
        "p99 latency (ms)",
        rows,
        |r| r.p99_ms,
        |r| r.baseline_p99_ms,
    )?;
    root.present()?;
    Ok(())
}

/// One figure of a row.
type Measure = fn(&AppendRow) -> f64;

/// One measure against clients (log scale), a line each for Plinth and the baseline.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    measure: &str,
    rows: &[AppendRow],
    plinth: Measure,
    baseline: Measure,
) -> anyhow::Result<()> {
    let top = rows
        .iter()
        .flat_map(|r| [plinth(r), baseline(r)])
        .fold(0.0, f64::max);
    let most_clients = rows.iter().map(|r| r.clients).max().unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{measure} against concurrent clients"),
            (FAMILY, 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8f64..most_clients.max(2.0) * 1.25).log_scale(),
            0f64..(top * 1.15).max(1.0),
        )?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients")
        .y_desc(measure)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tidy(*y))
        // The log axis' minor lines crowd near each power of ten: major lines only.
        .light_line_style(WHITE)
        .label_style((FAMILY, 14))
        .draw()?;
    let lines: [(&str, RGBColor, Measure); 2] = [
        ("Plinth (HTTP commands)", BLUE, plinth),
        ("baseline (1 insert per transaction)", RED, baseline),
    ];
    for (name, color, value) in lines {
        let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.clients as f64, value(r))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// An axis value without a trailing ".0".
fn tidy(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let row = |clients: usize, k: f64| AppendRow {
            clients,
            commands_per_s: 700.0 * k,
            baseline_per_s: 2000.0 * k,
            ratio_to_baseline: 0.35,
            commands_per_commit: 1.0,
            cpu_us_per_command: 300.0,
            pg_cpu_us_per_command: 200.0,
            client_cpu_us_per_command: 50.0,
            machine_busy: 1.0,
            baseline_pg_cpu_us_per_insert: 100.0,
            baseline_client_cpu_us_per_insert: 20.0,
            baseline_machine_busy: 1.0,
            p50_ms: 1.0 * k,
            p99_ms: 3.0 * k,
            baseline_p50_ms: 0.5 * k,
            baseline_p99_ms: 1.0 * k,
        };
        let dir = std::env::temp_dir().join(format!("plinth-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("append.png");
        append(&[row(1, 1.0), row(8, 4.0), row(32, 7.0)], &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
