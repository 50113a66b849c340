//! The stock `quern` binary: the CLI with the built-in jobs.

fn main() -> std::process::ExitCode {
    quern::main_with(quern_examples::registry())
}
