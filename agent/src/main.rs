//! The `wsgi-agent` binary: Juju runs it (through `dispatch`) for every hook.

fn main() -> anyhow::Result<()> {
    Ok(())
}
