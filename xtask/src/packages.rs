//! Installing the Debian packages a workflow needs, when they are missing.

use std::process::Command;

/// For each `(command, package)`, installs `package` with apt when `command` is missing.
pub(crate) fn ensure(needs: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = needs.iter().filter(|(cmd, _)| !on_path(cmd)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("== installing {}", missing.join(" "));
    crate::netns::run(&["apt-get", "update", "-qq"])?;
    let mut args = vec!["apt-get", "install", "-y", "-qq"];
    args.extend(&missing);
    crate::netns::run(&args)?;
    Ok(())
}

fn on_path(command: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {command}")]).output().is_ok_and(|o| o.status.success())
}
