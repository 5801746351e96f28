//! `kuryr-bench-report`: the report and the statistics of `bench/run`, from a run folder's
//! raw data (see the library's documentation for the files).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kuryr_bench_report::measure::Run;
use kuryr_bench_report::pool::PoolList;
use kuryr_bench_report::raw::RunDir;
use kuryr_bench_report::{report, stats, summary, Error};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Statistics and BENCHMARKS.md of bench/run from a run folder's raw data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the report of run folder DIR.
    Report {
        dir: PathBuf,
        /// Where to write it [DIR/BENCHMARKS.md]; `-` for standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// One line on what phase PHASE of LABEL measured (for progress messages).
    Summary {
        dir: PathBuf,
        label: String,
        phase: String,
    },
    /// The median of a numbers file, rounded to an integer (for bench/run's time budget).
    Median { file: PathBuf },
    /// The free pool ports of Neutron network NETWORK_ID in a `kuryr pool list --json` dump.
    PoolFree { file: PathBuf, network_id: String },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kuryr-bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Report { dir, output } => {
            // The report names the run folder: `.` becomes its real name.
            let dir = std::fs::canonicalize(&dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let out = output.unwrap_or_else(|| dir.join("BENCHMARKS.md"));
            let text = report::render(&Run::read(RunDir::new(dir))?);
            if out.as_os_str() == "-" {
                print!("{text}");
                return Ok(());
            }
            std::fs::write(&out, text).map_err(|source| Error::Io { path: out, source })
        }
        Command::Summary { dir, label, phase } => {
            let run = Run::read(RunDir::new(dir))?;
            if let Some(line) = summary::line(&run, &label, &phase) {
                println!("{line}");
            }
            Ok(())
        }
        Command::Median { file } => {
            let values = numbers_file(file)?;
            if let Some(m) = stats::median(&values) {
                println!("{}", m.round());
            }
            Ok(())
        }
        Command::PoolFree { file, network_id } => {
            let (dir, name) = split(file);
            let list: PoolList = RunDir::new(dir).json(&name)?.unwrap_or_default();
            println!("{}", list.free(&network_id));
            Ok(())
        }
    }
}

fn numbers_file(file: PathBuf) -> Result<Vec<u64>, Error> {
    let (dir, name) = split(file.clone());
    RunDir::new(dir).numbers(&name)?.ok_or_else(|| Error::Io {
        path: file,
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// A file as its folder and name, to read it like a run folder's.
fn split(file: PathBuf) -> (PathBuf, String) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = file.parent().map(PathBuf::from).unwrap_or_default();
    (dir, name)
}
