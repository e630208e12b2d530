//! The `jujulet` command line; also every hook tool (by argv[0]).

fn main() -> anyhow::Result<()> {
    if let Some(code) = jujulet::tools::main_if_tool() {
        std::process::exit(code);
    }
    Ok(())
}
