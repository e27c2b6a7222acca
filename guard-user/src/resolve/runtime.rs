//! What runtime a protected executable was built with, as far as its signals go.
//!
//! The kernel reads a process's signal dispositions, which tell it what the process does
//! with a signal, except for a Go program: its runtime installs one handler for nearly
//! every signal and then decides itself, exiting on some (`GO_RUNTIME_FATAL`). Telling a
//! Go program apart takes its ELF sections, which only userspace reads.

use std::{fs::File, io, os::unix::fs::FileExt as _, path::Path};

/// Sections the Go toolchain writes into every program: the build information (Go 1.13
/// on, kept by `strip` and by `-ldflags=-s -w`) and the Go build ID note.
const GO_SECTIONS: &[&[u8]] = &[b".go.buildinfo", b".note.go.buildid"];

/// Section headers read at most; real programs have a few dozen.
const MAX_SECTIONS: usize = 512;
/// Bytes of the section name table read at most.
const MAX_SECTION_NAMES: usize = 64 * 1024;

/// Whether the file at `host` is a Go program (a 64-bit little-endian ELF file with the Go
/// toolchain's sections). Anything else, a script or a file without section headers,
/// is not.
pub fn is_go_program(host: &Path) -> io::Result<bool> {
    let file = File::open(host)?;
    let mut header = [0u8; 64];
    if file.read_exact_at(&mut header, 0).is_err() {
        return Ok(false);
    }
    // ELFCLASS64, ELFDATA2LSB: what rtguard runs on (x86-64, arm64).
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(false);
    }
    let shoff = u64::from_le_bytes(header[0x28..0x30].try_into().unwrap());
    let shentsize = usize::from(u16::from_le_bytes([header[0x3a], header[0x3b]]));
    let shnum = usize::from(u16::from_le_bytes([header[0x3c], header[0x3d]]));
    let shstrndx = usize::from(u16::from_le_bytes([header[0x3e], header[0x3f]]));
    if shoff == 0 || shentsize < 64 || shnum == 0 || shnum > MAX_SECTIONS || shstrndx >= shnum {
        return Ok(false);
    }
    let mut table = vec![0u8; shnum * shentsize];
    file.read_exact_at(&mut table, shoff)?;
    let section = |i: usize| &table[i * shentsize..i * shentsize + 64];
    let names = section(shstrndx);
    let names_offset = u64::from_le_bytes(names[0x18..0x20].try_into().unwrap());
    let names_size = u64::from_le_bytes(names[0x20..0x28].try_into().unwrap());
    let mut strings = vec![0u8; (names_size as usize).min(MAX_SECTION_NAMES)];
    file.read_exact_at(&mut strings, names_offset)?;
    Ok((0..shnum).any(|i| {
        let at = u32::from_le_bytes(section(i)[..4].try_into().unwrap()) as usize;
        let name = strings.get(at..).unwrap_or_default();
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        GO_SECTIONS.contains(&name)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian file whose section name table names `sections`.
    fn elf_with_sections(sections: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name_at = Vec::new();
        for name in sections.iter().chain([&".shstrtab"]) {
            name_at.push(strings.len() as u32);
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        let strings_at = 64u64;
        let shoff = strings_at + strings.len() as u64;
        let shnum = name_at.len() + 1;
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&(shnum as u16).to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&((shnum - 1) as u16).to_le_bytes());
        elf.extend_from_slice(&strings);
        elf.extend_from_slice(&[0u8; 64]); // the null section
        for (i, at) in name_at.iter().enumerate() {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&at.to_le_bytes());
            if i == name_at.len() - 1 {
                sh[0x18..0x20].copy_from_slice(&strings_at.to_le_bytes());
                sh[0x20..0x28].copy_from_slice(&(strings.len() as u64).to_le_bytes());
            }
            elf.extend_from_slice(&sh);
        }
        elf
    }

    fn probe(bytes: &[u8]) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exe");
        std::fs::write(&path, bytes).unwrap();
        is_go_program(&path).unwrap()
    }

    #[test]
    fn a_go_program_is_told_by_its_sections() {
        assert!(probe(&elf_with_sections(&[".text", ".go.buildinfo"])));
        assert!(probe(&elf_with_sections(&[".note.go.buildid", ".text"])));
        assert!(!probe(&elf_with_sections(&[".text", ".data", ".go"])));
    }

    #[test]
    fn anything_else_is_not_go() {
        assert!(!probe(b"#!/bin/sh\nexit 0\n"));
        assert!(!probe(b""));
        let mut big_endian = elf_with_sections(&[".go.buildinfo"]);
        big_endian[5] = 2;
        assert!(!probe(&big_endian));
    }

    #[test]
    fn the_running_test_binary_is_not_go() {
        let exe = std::env::current_exe().unwrap();
        assert!(!is_go_program(&exe).unwrap());
    }
}
