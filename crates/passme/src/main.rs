use std::process::ExitCode;

fn main() -> ExitCode {
    passme::cli::main()
}
