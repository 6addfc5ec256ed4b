//! `northstar generate`: deterministic synthetic product events into a file.

use anyhow::Result;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget};
use northstar_generate::{generate_to_file, GeneratorConfig, OutputFormat, PlantedExperiment};

use crate::cli::{GenFormat, GenerateArgs};

pub fn run(args: GenerateArgs) -> Result<()> {
    let format = match args.format {
        Some(GenFormat::Parquet) => OutputFormat::Parquet,
        Some(GenFormat::Ndjson) => OutputFormat::Ndjson,
        None => match args.out.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => OutputFormat::Ndjson,
            _ => OutputFormat::Parquet,
        },
    };
    let experiment =
        args.experiment.as_deref().map(PlantedExperiment::parse).transpose().map_err(anyhow::Error::msg)?;
    let config = GeneratorConfig {
        events: args.events,
        seed: args.seed,
        days: args.days,
        experiment,
        identities: args.identities,
        accounts: args.accounts,
        ..Default::default()
    };
    let bar = ProgressBar::with_draw_target(Some(args.events), ProgressDrawTarget::stderr());
    let summary = generate_to_file(&config, &args.out, format, |n| bar.set_position(n)).map_err(anyhow::Error::msg)?;
    bar.finish_and_clear();
    eprintln!(
        "generated {} events of {} users into {} ({}) in {:.2} s",
        summary.events,
        summary.users,
        args.out.display(),
        HumanBytes(summary.bytes),
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}
