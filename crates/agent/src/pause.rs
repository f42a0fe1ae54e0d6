//! The pause image: the agent builds `flotilla/pause:1` itself, with no registry and no file
//! from the host.
//!
//! What this is: [`elf`], a hand-assembled static ELF executable that loops on a blocking
//! syscall forever (x86_64: `pause(2)`; aarch64: `ppoll(NULL, 0, NULL, NULL)`, since aarch64
//! has no `pause`), and [`rootfs_tar`], a one-file tar (`/pause`) that Docker imports as an
//! image ("create image from source"). The pause container of an awsvpc task owns the task's
//! network namespace; the task's containers join it.
//!
//! What this is not: an init. PID 1 without signal handlers ignores SIGTERM, so the agent
//! removes the pause container with SIGKILL (a forced remove).
//!
//! Invariant: the bytes are a pure function of the architecture; any other architecture is
//! refused with a clear error instead of producing an image that cannot run.

/// The pause image reference.
pub const IMAGE: &str = "flotilla/pause:1";
/// Repository part of [`IMAGE`].
pub const REPO: &str = "flotilla/pause";
/// Tag part of [`IMAGE`].
pub const TAG: &str = "1";
/// The executable's path in the image.
pub const PATH: &str = "/pause";

/// Where the executable is loaded.
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The machine code of the loop, and the ELF `e_machine`, for an architecture as Docker
/// names it (`x86_64`/`amd64`, `aarch64`/`arm64`).
fn code_for(arch: &str) -> Option<(u16, Vec<u8>)> {
    match arch {
        "x86_64" | "amd64" => Some((
            0x3e,
            vec![
                0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
                0x0f, 0x05, // syscall
                0xeb, 0xf7, // jmp -9 (back to mov)
            ],
        )),
        "aarch64" | "arm64" => {
            let words: [u32; 7] = [
                0xd280_0000, // mov x0, #0   (fds = NULL)
                0xd280_0001, // mov x1, #0   (nfds = 0)
                0xd280_0002, // mov x2, #0   (timeout = NULL: forever)
                0xd280_0003, // mov x3, #0   (sigmask = NULL)
                0xd280_0928, // mov x8, #73  (ppoll)
                0xd400_0001, // svc #0
                0x17ff_fffa, // b -6 instructions (back to the first mov)
            ];
            Some((0xb7, words.iter().flat_map(|w| w.to_le_bytes()).collect()))
        }
        _ => None,
    }
}

/// A static ELF64 executable for `arch` that blocks forever; an error names the architecture
/// when there is no hand-assembled code for it.
pub fn elf(arch: &str) -> Result<Vec<u8>, String> {
    let (machine, code) = code_for(arch).ok_or_else(|| {
        format!("cannot build the pause image for architecture {arch:?}: only x86_64 and aarch64 are supported")
    })?;
    let total = (EHDR + PHDR + code.len()) as u64;
    let mut b = Vec::with_capacity(total as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&2u16.to_le_bytes()); // e_type: EXEC
    b.extend_from_slice(&machine.to_le_bytes()); // e_machine
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // e_entry
    b.extend_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
    b.extend_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
    b.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    b.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
                                              // One PT_LOAD segment, R+X, the whole file at BASE.
    b.extend_from_slice(&1u32.to_le_bytes()); // p_type: LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R | X
    b.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    b.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    b.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    b.extend_from_slice(&total.to_le_bytes()); // p_filesz
    b.extend_from_slice(&total.to_le_bytes()); // p_memsz
    b.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    b.extend_from_slice(&code);
    Ok(b)
}

fn octal(field: &mut [u8], value: u64) {
    // Zero-padded octal, NUL-terminated, filling the field.
    let s = format!("{:0width$o}", value, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[field.len() - 1] = 0;
}

/// A ustar archive holding one executable file `name` (mode 0755, root-owned).
pub fn tar_one(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o755); // mode
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], data.len() as u64); // size
    octal(&mut h[136..148], 0); // mtime
    h[156] = b'0'; // regular file
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The root filesystem of the pause image for `arch`: `/pause` and nothing else.
pub fn rootfs_tar(arch: &str) -> Result<Vec<u8>, String> {
    Ok(tar_one(PATH.trim_start_matches('/'), &elf(arch)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([b[i], b[i + 1]])
    }
    fn u64_at(b: &[u8], i: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    }

    #[test]
    fn the_elf_headers_are_sane() {
        for (arch, machine) in [("x86_64", 0x3e), ("aarch64", 0xb7), ("arm64", 0xb7)] {
            let b = elf(arch).unwrap();
            assert_eq!(&b[..4], b"\x7fELF");
            assert_eq!(b[4], 2, "64-bit");
            assert_eq!(b[5], 1, "little-endian");
            assert_eq!(u16_at(&b, 16), 2, "executable");
            assert_eq!(u16_at(&b, 18), machine);
            assert_eq!(u64_at(&b, 32), 64, "program headers follow the ELF header");
            assert_eq!(u16_at(&b, 54), 56);
            assert_eq!(u16_at(&b, 56), 1);
            let entry = u64_at(&b, 24);
            assert_eq!(entry, BASE + 120, "the entry point is the first code byte");
            // The segment covers the whole file.
            assert_eq!(u64_at(&b, 64 + 32), b.len() as u64);
            assert!(b.len() < 200, "tiny: {} bytes", b.len());
        }
        // x86_64: the loop jumps back to its start.
        let b = elf("x86_64").unwrap();
        assert_eq!(&b[120..], &[0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]);
        assert!(elf("riscv64").unwrap_err().contains("riscv64"));
    }

    #[test]
    fn the_tar_has_one_executable_with_a_valid_checksum() {
        let t = rootfs_tar("x86_64").unwrap();
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[..6], b"pause\0");
        assert_eq!(&t[100..107], b"0000755");
        let size = u64::from_str_radix(std::str::from_utf8(&t[124..135]).unwrap(), 8).unwrap();
        assert_eq!(size, 129);
        let mut h = t[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| u32::from(*b)).sum::<u32>());
        assert_eq!(&t[512..516], b"\x7fELF");
        assert!(t[t.len() - 1024..].iter().all(|b| *b == 0));
    }
}
