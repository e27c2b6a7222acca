fn main() -> std::process::ExitCode {
    guard_user::cli::main()
}
