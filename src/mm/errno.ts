/**
 * Outcomes of the operations that model syscalls and faults (decisions.md D7): the kernel's own error codes,
 * returned, never thrown. pvmw's PvmwError is thrown only for input the kernel could never see.
 */
export type Errno = 'EINVAL' | 'ENOMEM' | 'EFAULT' | 'EPERM' | 'EACCES' | 'EAGAIN' | 'EBUSY' | 'ENOENT' | 'EEXIST' | 'EOVERFLOW';

/** A syscall's result: success with a value (0, or an address for mmap/mremap), or an errno. */
export type SysResult = { ok: true; value: number } | { ok: false; errno: Errno };

export const ok = (value = 0): SysResult => ({ ok: true, value });
export const err = (errno: Errno): SysResult => ({ ok: false, errno });

/**
 * A fault's outcome (kernel-operations.md §5): handled (the access may proceed or retries), or the signal /
 * VM_FAULT code the kernel would deliver.
 */
export type FaultOutcome = 'ok' | 'retry' | 'SIGSEGV' | 'SIGBUS' | 'OOM';
