//! Progress of encrypted training on stderr: a bar on a terminal, plain log lines
//! (every 10 s and at the end of each epoch) otherwise.

use blindtuner_runtime::tfhe::driver::{Progress, StepEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);

pub enum Reporter {
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

impl Reporter {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub fn for_stderr() -> Reporter {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise}, ETA {eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            Reporter::Bar(bar)
        } else {
            Reporter::Lines { last: None }
        }
    }

    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn rate(ev: &StepEvent) -> f64 {
    ev.pbs_here as f64 / ev.elapsed.as_secs_f64().max(1e-9)
}

impl Progress for Reporter {
    fn step(&mut self, ev: &StepEvent) -> ControlFlow<()> {
        match self {
            Reporter::Bar(bar) => {
                bar.set_length(ev.total_steps);
                bar.set_position(ev.step);
                bar.set_message(format!("epoch {}/{} · {:.0} PBS/s", ev.epoch + 1, ev.epochs, rate(ev)));
            }
            Reporter::Lines { last } => {
                let epoch_end = ev.step_in_epoch == ev.steps_per_epoch;
                let due = !matches!(last, Some(t) if t.elapsed() < LOG_EVERY);
                if epoch_end || due || ev.step == ev.total_steps {
                    let left = ev.total_steps.saturating_sub(ev.step);
                    let done_here = ev.steps_here.max(1) as f64;
                    let eta = ev.elapsed.as_secs_f64() / done_here * left as f64;
                    eprintln!(
                        "epoch {}/{} step {}/{} (total {}/{}): {} PBS, {:.0} PBS/s, {:.1} s elapsed, ETA {:.0} s",
                        ev.epoch + 1,
                        ev.epochs,
                        ev.step_in_epoch,
                        ev.steps_per_epoch,
                        ev.step,
                        ev.total_steps,
                        ev.pbs,
                        rate(ev),
                        ev.elapsed.as_secs_f64(),
                        eta
                    );
                    *last = Some(Instant::now());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn log(&mut self, line: &str) {
        match self {
            Reporter::Bar(bar) => bar.println(line),
            Reporter::Lines { .. } => eprintln!("{line}"),
        }
    }
}
