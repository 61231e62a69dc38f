//! How close are predictive-coding updates to backprop? The shape of Rosenbaum (2022),
//! Figs. 3–4, on the seed's network and the bundled MNIST digits.
//!
//! ```text
//! cargo run --release --example alignment -- --out runs/alignment
//! ```
//!
//! Trains the network with backprop (Exact) for `--steps` steps, then, on one batch, compares
//! the FixedPred and Strict updates with backprop's gradient layer by layer, for
//! `n ∈ {1, 2, 5, 10, 20, 50, 100, 200}` and `η ∈ {0.1, 0.5, 1}`: the relative error
//! `‖Δθ_pc − Δθ_bp‖ / ‖Δθ_bp‖` and the angle between them. Writes `alignment.csv`
//! (`err_type,eta,n,layer,rel_error,angle_deg`) and `alignment.png` into `--out`.
//!
//! For FixedPred the relative error of layer `l` is `1 − P(Binomial(n−1, η) ≥ L−l)`; the
//! example checks this to 1e-4 (the relaxation runs in float64 by default) and exits
//! non-zero otherwise. With a fixed step, Strict diverges here for η = 0.5 and 1 (the energy
//! rises): by default such sweeps are backtracked (the step is halved until the energy
//! falls, and the example lists where that happened); with `--on-diverge error` they are
//! recorded as NaN.

#[path = "common/font.rs"]
mod font;
#[path = "mnist/model.rs"]
#[allow(dead_code)]
mod model;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind};
use tch2pc::{binomial_tail, data, loss, ErrType, OnDiverge, PcError, PcInfer};

const NS: [usize; 8] = [1, 2, 5, 10, 20, 50, 100, 200];
const ETAS: [f64; 3] = [0.1, 0.5, 1.0];

/// Layer-wise alignment of predictive-coding updates with backprop (Rosenbaum 2022,
/// Figs. 3–4) on the seed's MNIST network.
#[derive(Debug, Parser)]
#[command(name = "alignment")]
struct Cli {
    /// Output directory for alignment.csv and alignment.png.
    #[arg(long, default_value = "runs/alignment")]
    out: PathBuf,
    /// Backprop training steps (batch 300, Adam lr 0.002) before measuring.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run the relaxations in the model's float32 instead of float64.
    #[arg(long)]
    float32: bool,
    /// What a Strict relaxation that would raise its energy does: backtrack (halve the step;
    /// the default, so that every (eta, n) gets a value), or stop with an error (recorded as
    /// NaN).
    #[arg(long, value_enum, default_value_t = Diverge::Backtrack)]
    on_diverge: Diverge,
    /// libtorch CPU threads.
    #[arg(long)]
    threads: Option<i32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Diverge {
    Error,
    Backtrack,
}

struct Row {
    err_type: ErrType,
    eta: f64,
    n: usize,
    layer: usize,
    rel_error: f64,
    angle_deg: f64,
    /// Step halvings of this (err_type, eta, n) relaxation (backtracking).
    backtracks: usize,
    /// The relaxation diverged (`--on-diverge error`): no values.
    diverged: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(t) = cli.threads {
        tch::set_num_threads(t);
    }
    tch::manual_seed(cli.seed as i64);
    let device = Device::Cpu;
    let ds = data::load_dir(data::find_bundled(None)?, Kind::Float, device)?;
    let vs = nn::VarStore::new(device);
    let net = model::net(&vs);
    let layers = net.len();

    // A few hundred backprop steps, so that the weights are those of a network in training.
    let mut opt = nn::Adam::default().build(&vs, 2e-3)?;
    let mut step = 0;
    'train: for epoch in 0.. {
        for batch in ds.train.batches(300, Some(cli.seed.wrapping_add(epoch)))? {
            if step == cli.steps {
                break 'train;
            }
            let (x, y) = batch?;
            PcInfer::new(ErrType::Exact).run(&net, &loss::cross_entropy, &x, &y)?;
            opt.step();
            step += 1;
        }
    }
    let (x, y) = ds
        .train
        .batches(300, Some(u64::MAX))?
        .next()
        .ok_or_else(|| anyhow!("no data"))??;

    let mut rows = Vec::new();
    let mut backtracked = Vec::new();
    for err_type in [ErrType::FixedPred, ErrType::Strict] {
        for eta in ETAS {
            for n in NS {
                let mut cfg = PcInfer::new(err_type).eta(eta).n(n);
                if !cli.float32 {
                    cfg = cfg.relax_kind(Kind::Double);
                }
                if let Diverge::Backtrack = cli.on_diverge {
                    cfg = cfg.on_diverge(OnDiverge::Backtrack);
                }
                match cfg.alignment(&net, &loss::cross_entropy, &x, &y) {
                    Ok(a) => {
                        if a.report.backtracks > 0 {
                            backtracked.push(format!(
                                "{err_type} eta={eta} n={n}: {} halvings, final step {:.3e}",
                                a.report.backtracks, a.report.final_eta
                            ));
                        }
                        let backtracks = a.report.backtracks;
                        rows.extend(a.layers.into_iter().map(|a| Row {
                            err_type,
                            eta,
                            n,
                            layer: a.layer,
                            rel_error: a.rel_error,
                            angle_deg: a.angle_deg,
                            backtracks,
                            diverged: false,
                        }))
                    }
                    Err(e @ (PcError::Diverged { .. } | PcError::NonFiniteBeliefs { .. })) => {
                        eprintln!("{err_type} eta={eta} n={n}: {e}; recorded as NaN");
                        rows.extend((1..=layers).map(|layer| Row {
                            err_type,
                            eta,
                            n,
                            layer,
                            rel_error: f64::NAN,
                            angle_deg: f64::NAN,
                            backtracks: 0,
                            diverged: true,
                        }));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    // FixedPred against its closed form.
    let mut worst: f64 = 0.0;
    for r in rows.iter().filter(|r| r.err_type == ErrType::FixedPred) {
        let want = 1.0 - binomial_tail(r.n - 1, r.eta, layers - r.layer);
        worst = worst.max((r.rel_error - want).abs());
    }
    fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;
    let csv = cli.out.join("alignment.csv");
    write_csv(&csv, &rows)?;
    let png = cli.out.join("alignment.png");
    let subtitle = format!(
        "seed's MNIST network ({layers} PC layers) after {} backprop steps (Adam, lr 0.002, \
         batch 300, seed {}); updates on one batch of 300; relaxation in {}; Strict: {}",
        cli.steps,
        cli.seed,
        if cli.float32 { "float32" } else { "float64" },
        match cli.on_diverge {
            Diverge::Backtrack => "backtracking",
            Diverge::Error => "stop on divergence",
        }
    );
    plot(&png, &rows, layers, &subtitle)?;
    println!(
        "after {} backprop steps; wrote {} and {}",
        cli.steps,
        csv.display(),
        png.display()
    );
    println!(
        "FixedPred relative error vs 1 - P(Binomial(n-1, eta) >= L-l): max deviation {worst:.2e}"
    );
    for err_type in [ErrType::FixedPred, ErrType::Strict] {
        for r in rows
            .iter()
            .filter(|r| r.err_type == err_type && r.eta == 0.1 && r.n == 20)
        {
            println!(
                "{err_type:>9} eta=0.1 n=20 layer {}: relative error {:.4}, angle {:.2} deg",
                r.layer, r.rel_error, r.angle_deg
            );
        }
    }
    if !backtracked.is_empty() {
        println!("Strict relaxations whose step was halved to keep the energy falling:");
        for b in &backtracked {
            println!("  {b}");
        }
    }
    if worst > 1e-4 {
        bail!("FixedPred deviates from its closed form by {worst:.2e} (> 1e-4)");
    }
    Ok(())
}

fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "err_type,eta,n,layer,rel_error,angle_deg,backtracks")?;
    for r in rows {
        writeln!(
            f,
            "{},{},{},{},{},{},{}",
            r.err_type, r.eta, r.n, r.layer, r.rel_error, r.angle_deg, r.backtracks
        )?;
    }
    Ok(())
}

/// Okabe–Ito colours (distinguishable with colour-blindness), one per layer.
const LAYER_COLORS: [RGBColor; 6] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
];
/// Background of the n's at which Strict's step was halved.
const BACKTRACK_BAND: RGBColor = RGBColor(255, 214, 170);
/// Background of the n's at which Strict diverged (no values).
const DIVERGED_BAND: RGBColor = RGBColor(215, 215, 215);

fn layer_color(layer: usize) -> RGBColor {
    LAYER_COLORS[(layer - 1) % LAYER_COLORS.len()]
}

/// Draws layer `layer`'s markers at `points`: a different shape per layer, from large
/// and open to small and filled, so that markers of equal values show inside one another.
fn draw_markers<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    layer: usize,
    points: &[(f64, f64)],
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let color = layer_color(layer);
    let line = color.stroke_width(2);
    let at = |&p: &(f64, f64)| EmptyElement::at(p);
    let pts = points.iter();
    let drawn = match (layer - 1) % 6 {
        0 => chart.draw_series(pts.map(|p| at(p) + Circle::new((0, 0), 8, line))),
        1 => chart.draw_series(pts.map(|p| at(p) + Rectangle::new([(-6, -6), (6, 6)], line))),
        2 => chart.draw_series(pts.map(|p| at(p) + TriangleMarker::new((0, 0), 7, line))),
        3 => chart.draw_series(pts.map(|p| at(p) + Cross::new((0, 0), 5, line))),
        4 => chart.draw_series(pts.map(|p| at(p) + Circle::new((0, 0), 3, color.filled()))),
        _ => chart
            .draw_series(pts.map(|p| at(p) + Rectangle::new([(-2, -2), (2, 2)], color.filled()))),
    };
    drawn.map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// The figure: a legend, then a 3 x 3 grid (rows: FixedPred's relative error, Strict's
/// relative error, Strict's angle; columns: η), then notes. FixedPred's angle is left
/// out: its updates are scalar multiples of backprop's, so the angle is 0 (or undefined
/// where the update is 0) and its panel would be empty; the notes say so with the
/// largest value measured.
fn plot(path: &Path, rows: &[Row], layers: usize, subtitle: &str) -> Result<()> {
    font::register()?;
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let (width, height) = (1500u32, 1400u32);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header, rest) = root.split_vertically(120);
    let (grid, notes) = rest.split_vertically(height - 120 - 110);

    let centre = |size: u32| {
        (font::FAMILY, size)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top))
    };
    let mid = i32::try_from(width / 2).unwrap_or(0);
    header
        .draw(&Text::new(
            "Predictive-coding updates vs backprop, per layer, against the number of relaxation sweeps n",
            (mid, 10),
            centre(24),
        ))
        .map_err(|e| err(&e))?;
    header
        .draw(&Text::new(subtitle.to_string(), (mid, 44), centre(16)))
        .map_err(|e| err(&e))?;

    // Legend: one entry per layer, then the backtracking / divergence bands.
    let any_backtracks = rows.iter().any(|r| r.backtracks > 0);
    let any_diverged = rows.iter().any(|r| r.diverged);
    let (_, legend_area) = header.split_vertically(72);
    let legend_width = f64::from(width);
    let mut legend = ChartBuilder::on(&legend_area)
        .build_cartesian_2d(0f64..legend_width, 0f64..1f64)
        .map_err(|e| err(&e))?;
    let label = (font::FAMILY, 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let y = 0.5;
    let mut x = 60.0;
    for layer in 1..=layers {
        let color = layer_color(layer);
        legend
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, y), (x + 40.0, y)],
                color.stroke_width(2),
            )))
            .map_err(|e| err(&e))?;
        draw_markers(&mut legend, layer, &[(x + 20.0, y)])?;
        let text = match layer {
            1 => "layer 1 (input side)".to_string(),
            l if l == layers => format!("layer {l} (output)"),
            l => format!("layer {l}"),
        };
        let advance = 70.0 + 8.5 * text.chars().count() as f64;
        legend
            .draw_series(std::iter::once(Text::new(
                text,
                (x + 50.0, y),
                label.clone(),
            )))
            .map_err(|e| err(&e))?;
        x += advance;
    }
    for (shown, colour, text) in [
        (
            any_backtracks,
            BACKTRACK_BAND,
            "Strict's step halved (number: halvings)",
        ),
        (any_diverged, DIVERGED_BAND, "Strict diverged: no value"),
    ] {
        if shown {
            legend
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, 0.15), (x + 26.0, 0.85)],
                    colour.filled(),
                )))
                .map_err(|e| err(&e))?;
            legend
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x + 34.0, y),
                    label.clone(),
                )))
                .map_err(|e| err(&e))?;
            x += 60.0 + 8.5 * text.chars().count() as f64;
        }
    }

    type Metric = (&'static str, fn(&Row) -> f64);
    let panels: [(ErrType, Metric); 3] = [
        (ErrType::FixedPred, ("relative error", |r| r.rel_error)),
        (ErrType::Strict, ("relative error", |r| r.rel_error)),
        (ErrType::Strict, ("angle (degrees)", |r| r.angle_deg)),
    ];
    let cells = grid.split_evenly((panels.len(), ETAS.len()));
    // Angles left undefined by a zero update (not by a diverged relaxation).
    let undefined_angles = rows
        .iter()
        .filter(|r| r.err_type == ErrType::Strict && !r.diverged && r.angle_deg.is_nan())
        .count();
    for (i, cell) in cells.iter().enumerate() {
        let (err_type, (metric, value)) = panels[i / ETAS.len()];
        let eta = ETAS[i % ETAS.len()];
        let pts: Vec<&Row> = rows
            .iter()
            .filter(|r| r.err_type == err_type && r.eta == eta)
            .collect();
        let ymax = pts
            .iter()
            .map(|r| value(r))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // Relative errors on at least [0, 1] (1: no update at all), with room for the
        // markers at the top.
        let ymax = if metric == "relative error" {
            (ymax * 1.08).max(1.1)
        } else {
            (ymax * 1.12).max(1.0)
        };
        let mut chart = ChartBuilder::on(cell)
            .margin(10)
            .margin_right(18)
            .x_label_area_size(40)
            .y_label_area_size(62)
            .caption(
                format!("{err_type}, η = {eta}: {metric}"),
                (font::FAMILY, 17),
            )
            .build_cartesian_2d(
                (0.75f64..270f64)
                    .log_scale()
                    .with_key_points(NS.iter().map(|&n| n as f64).collect::<Vec<_>>()),
                0f64..ymax,
            )
            .map_err(|e| err(&e))?;
        // The grid first, so that the bands below hide it rather than show through.
        chart
            .configure_mesh()
            .x_desc("sweeps n (log scale)")
            .y_desc(metric)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| {
                if metric == "relative error" {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                }
            })
            .light_line_style(WHITE)
            .label_style((font::FAMILY, 13))
            .axis_desc_style((font::FAMILY, 14))
            .draw()
            .map_err(|e| err(&e))?;
        // Bands behind the data: Strict's backtracked and diverged n.
        let mut seen_n = Vec::new();
        for r in &pts {
            if seen_n.contains(&r.n) || (r.backtracks == 0 && !r.diverged) {
                continue;
            }
            seen_n.push(r.n);
            let n = r.n as f64;
            let band = if r.diverged {
                DIVERGED_BAND
            } else {
                BACKTRACK_BAND
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(n / 1.18, 0.0), (n * 1.18, ymax)],
                    band.filled(),
                )))
                .map_err(|e| err(&e))?;
            if r.backtracks > 0 {
                chart
                    .draw_series(std::iter::once(Text::new(
                        r.backtracks.to_string(),
                        (n, ymax),
                        (font::FAMILY, 13)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Top)),
                    )))
                    .map_err(|e| err(&e))?;
            }
        }
        for layer in 1..=layers {
            let series: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.layer == layer)
                .map(|r| (r.n as f64, value(r)))
                .collect();
            // A line through consecutive defined values only: no line across a gap.
            for run in series.split(|p| !p.1.is_finite()) {
                chart
                    .draw_series(LineSeries::new(
                        run.iter().copied(),
                        layer_color(layer).stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?;
            }
            let defined: Vec<(f64, f64)> =
                series.iter().copied().filter(|p| p.1.is_finite()).collect();
            draw_markers(&mut chart, layer, &defined)?;
        }
    }

    // Notes: what is not drawn, and why.
    let fixed_angle = rows
        .iter()
        .filter(|r| r.err_type == ErrType::FixedPred)
        .map(|r| r.angle_deg)
        .filter(|a| a.is_finite())
        .fold(0.0f64, f64::max);
    let left = (font::FAMILY, 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let lines = [
        format!(
            "FixedPred's update of layer l is c_l = P(Binomial(n−1, η) ≥ L−l) times backprop's (L = {layers}), so its relative error is 1 − c_l and its angle to \
             backprop is 0 (largest measured: {fixed_angle:.1e}°); that panel is left out."
        ),
        format!(
            "Missing points in the angle panels ({undefined_angles} of them): the layer's update is exactly zero (after n sweeps the output error has \
             not reached it yet; its relative error is 1), so it has no angle."
        ),
        "Markers inside one another are equal values. Relative error: ‖Δθ_pc − Δθ_bp‖ / ‖Δθ_bp‖; angle: between Δθ_pc and Δθ_bp.".to_string(),
    ];
    for (k, line) in lines.iter().enumerate() {
        notes
            .draw(&Text::new(
                line.clone(),
                (30, 8 + 30 * i32::try_from(k).unwrap_or(0)),
                left.clone(),
            ))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
