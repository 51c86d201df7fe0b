//! `phonegen`: regenerate (or `--check`) `core/src/phone/data.rs`.
//!
//! ```text
//! cargo run -p phonegen                       # from the vendored XML if present, else the crate's
//! cargo run -p phonegen -- --xml FILE --metadata-version 9.0.43   # vendor a newer XML, then generate
//! cargo run -p phonegen -- --check            # exit 1 if the committed file is stale
//! ```
//!
//! A newer XML is copied to `phonegen/metadata/PhoneNumberMetadata.xml` (with its version
//! in `phonegen/metadata/VERSION`) so that CI, and the differential tests in core, use
//! the same source as the generated file. Delete both to go back to the crate's own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use phonenumber::metadata::{Database, DATABASE};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phonegen: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    xml: Option<PathBuf>,
    version: Option<String>,
    check: bool,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        xml: None,
        version: None,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--xml" => out.xml = Some(it.next().ok_or("--xml needs a file")?.into()),
            "--metadata-version" => {
                out.version = Some(it.next().ok_or("--metadata-version needs a value")?)
            }
            "--check" => out.check = true,
            "-h" | "--help" => {
                return Err(
                    "usage: phonegen [--check] [--xml FILE --metadata-version X.Y.Z]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if out.xml.is_some() != out.version.is_some() {
        return Err("--xml and --metadata-version go together".into());
    }
    if out.check && out.xml.is_some() {
        return Err("--check compares against the vendored or bundled XML; drop --xml".into());
    }
    Ok(out)
}

fn run() -> Result<ExitCode, String> {
    let args = args()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let vendored_xml = root.join("phonegen/metadata/PhoneNumberMetadata.xml");
    let vendored_version = root.join("phonegen/metadata/VERSION");
    let out_path = root.join("core/src/phone/data.rs");

    if let (Some(xml), Some(version)) = (&args.xml, &args.version) {
        if !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') || version.is_empty() {
            return Err(format!("metadata version {version:?} is not like 9.0.43"));
        }
        // Load before copying: a file the crate's loader refuses never gets vendored.
        Database::load(xml).map_err(|e| format!("{}: {e:?}", xml.display()))?;
        std::fs::create_dir_all(root.join("phonegen/metadata")).map_err(|e| e.to_string())?;
        std::fs::copy(xml, &vendored_xml).map_err(|e| format!("copying {}: {e}", xml.display()))?;
        std::fs::write(&vendored_version, format!("{version}\n")).map_err(|e| e.to_string())?;
    }

    let model = if vendored_xml.exists() {
        let version = std::fs::read_to_string(&vendored_version)
            .map_err(|e| format!("{}: {e}", vendored_version.display()))?;
        let db = Database::load(&vendored_xml)
            .map_err(|e| format!("{}: {e:?}", vendored_xml.display()))?;
        phonegen::model::build(
            &db,
            version.trim(),
            &format!(
                "phonegen/metadata/PhoneNumberMetadata.xml (libphonenumber {})",
                version.trim()
            ),
        )?
    } else {
        let crate_version = crate_version(&root)?;
        let version = crate_version
            .split_once('+')
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| format!("phonenumber {crate_version} carries no metadata version"))?;
        phonegen::model::build(
            &DATABASE,
            &version,
            &format!(
                "the PhoneNumberMetadata.xml bundled with the phonenumber crate {crate_version}"
            ),
        )?
    };
    let text = phonegen::emit::render(&model)?;
    let bytes: usize = model.patterns.iter().map(|p| p.program.len()).sum();
    if args.check {
        let current = std::fs::read_to_string(&out_path).unwrap_or_default();
        if current != text {
            eprintln!(
                "phonegen: {} is stale: run scripts/phone-metadata.sh and commit the result",
                out_path.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!(
            "phonegen: {} is up to date (metadata {})",
            out_path.display(),
            model.version
        );
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::write(&out_path, text).map_err(|e| format!("{}: {e}", out_path.display()))?;
    eprintln!(
        "phonegen: wrote {} — metadata {}, {} regions, {} patterns, {bytes} bytes of programs",
        out_path.display(),
        model.version,
        model.regions.len(),
        model.patterns.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The `phonenumber` version in Cargo.lock, e.g. `0.3.10+9.0.33` (the part after `+`
/// is the libphonenumber metadata it bundles).
fn crate_version(root: &Path) -> Result<String, String> {
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"phonenumber\"" {
            let version = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
                .ok_or("Cargo.lock: phonenumber has no version line")?;
            return Ok(version.to_owned());
        }
    }
    Err("Cargo.lock has no phonenumber package".into())
}
