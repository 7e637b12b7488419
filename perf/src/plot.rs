//! `--report DIR`: the report as `report.json` plus two PNG plots people look at —
//! `latency.png`, latency by percentile on a "nines" axis (0 %, 90 %, 99 %, 99.9 %... evenly
//! spaced, log latency: HDR histogram style, so the tail is as readable as the median), and
//! `throughput.png`, completions per second over the measured phase.
//!
//! Drawn with `plotters` into an RGB pixel buffer (no system fonts: an embedded DejaVu Sans
//! Mono) and encoded by `png`: plotters' own encoder pulls in `image` and its JPEG and BMP
//! codecs, a first build's worth of compiling for one PNG.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::BenchError;
use crate::report::Report;

/// Pixels of each plot.
pub const PLOT_SIZE: (u32, u32) = (1_000, 600);
/// Bytes of one plot's RGB buffer (3 bytes a pixel).
const PLOT_BUFFER_BYTES: usize = PLOT_SIZE.0 as usize * PLOT_SIZE.1 as usize * 3;
const _: () = assert!(PLOT_BUFFER_BYTES == 1_800_000);

/// The embedded font (DejaVu Sans Mono, its licence beside it in `perf/assets`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const FONT_FAMILY: &str = "sans-serif";

/// The files `--report DIR` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// The report object, as `--json` prints it.
    pub json: PathBuf,
    /// Latency by percentile.
    pub latency_png: PathBuf,
    /// Throughput over time.
    pub throughput_png: PathBuf,
}

/// Writes `report` into `dir` (created if missing).
pub fn write_report(report: &Report, dir: &Path) -> Result<ReportFiles, BenchError> {
    std::fs::create_dir_all(dir)?;
    let files = ReportFiles {
        json: dir.join("report.json"),
        latency_png: dir.join("latency.png"),
        throughput_png: dir.join("throughput.png"),
    };
    std::fs::write(&files.json, format!("{}\n", report.to_json()?))?;
    // Registering twice (a second report in one process) is harmless.
    register_font(FONT_FAMILY, FontStyle::Normal, FONT).map_err(|_| plot_error("font"))?;
    let curves = report.curves.clone().unwrap_or_default();
    let title = format!("peregrine bench {}", report.workload);
    let mut pixels = vec![0u8; PLOT_BUFFER_BYTES];
    latency_plot(&mut pixels, &title, &curves.percentiles)?;
    write_png(&files.latency_png, &pixels)?;
    throughput_plot(&mut pixels, &title, &curves.throughput)?;
    write_png(&files.throughput_png, &pixels)?;
    Ok(files)
}

/// Encodes an RGB buffer of [`PLOT_SIZE`] as a PNG file at `path`.
fn write_png(path: &Path, pixels: &[u8]) -> Result<(), BenchError> {
    assert_eq!(pixels.len(), PLOT_BUFFER_BYTES);
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, PLOT_SIZE.0, PLOT_SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| plot_error(format!("{}: {e}", path.display()));
    let mut writer = encoder.write_header().map_err(png_error)?;
    writer.write_image_data(pixels).map_err(png_error)?;
    writer.finish().map_err(png_error)
}

fn plot_error(what: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(what.to_string())
}

/// The percentile a "nines" value stands for: 1 → 90 %, 2 → 99 %, 3 → 99.9 %.
fn percentile_label(nines: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines - 2.0).ceil().clamp(0.0, 9.0) as usize;
    format!("{percent:.decimals$} %")
}

fn latency_plot(pixels: &mut [u8], title: &str, curve: &[(f64, u64)]) -> Result<(), BenchError> {
    let root = BitMapBackend::with_buffer(pixels, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let nines_max = curve.last().map_or(1.0, |(nines, _)| nines.ceil().max(1.0));
    // Microseconds on a log axis, floored above zero.
    let us = |ns: u64| (ns as f64 / 1e3).max(1e-3);
    let low = curve.iter().map(|(_, ns)| us(*ns)).fold(f64::MAX, f64::min);
    let high = curve.iter().map(|(_, ns)| us(*ns)).fold(1e-3, f64::max);
    let (low, high) = if curve.is_empty() {
        (1e-3, 1.0)
    } else {
        (low / 2.0, high * 2.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title}: latency by percentile"), (FONT_FAMILY, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..nines_max, (low..high).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(usize::try_from(nines_max as u64).unwrap_or(1) + 1)
        .x_label_formatter(&|nines| percentile_label(*nines))
        .label_style((FONT_FAMILY, 14))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            curve.iter().map(|(nines, ns)| (*nines, us(*ns))),
            BLUE.stroke_width(2),
        ))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

fn throughput_plot(
    pixels: &mut [u8],
    title: &str,
    timeline: &[(f64, f64)],
) -> Result<(), BenchError> {
    let root = BitMapBackend::with_buffer(pixels, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let end_s = timeline.last().map_or(1.0, |(t, _)| t.max(0.1) + 0.1);
    let top = timeline.iter().map(|(_, ops)| *ops).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: completions per second"),
            (FONT_FAMILY, 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..end_s, 0f64..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the measured phase")
        .y_desc("ops/s (100 ms buckets)")
        .label_style((FONT_FAMILY, 14))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            timeline.iter().copied(),
            RED.stroke_width(2),
        ))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nines_read_as_percentiles() {
        assert_eq!(percentile_label(0.0), "0 %");
        assert_eq!(percentile_label(1.0), "90 %");
        assert_eq!(percentile_label(2.0), "99 %");
        assert_eq!(percentile_label(3.0), "99.9 %");
        assert_eq!(percentile_label(4.0), "99.99 %");
    }
}
