//! Writes the example's YAML to `examples/yaml/`: `cargo run -p sync-examples --bin manifests`.

use sync_examples::manifests;

fn main() -> std::io::Result<()> {
    let dir = manifests::dir();
    std::fs::create_dir_all(&dir)?;
    for (name, content) in manifests::files() {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
