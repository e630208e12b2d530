//! The `jujulet` command line.

fn main() -> anyhow::Result<()> {
    Ok(())
}
