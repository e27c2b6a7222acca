//! Task-local storage (`BPF_MAP_TYPE_TASK_STORAGE`): one value per task, allocated when a
//! program first stores one and freed with the task. It holds nothing for tasks that never
//! use it, and, unlike an LRU hash keyed by pid, it never evicts one task's value to make
//! room for another's.
//!
//! aya-ebpf has no type for it, so this is its BTF map definition, in the layout every
//! loader reads (`__uint(type, …)`, `__type(key, int)`, … as pointers to arrays whose
//! lengths carry the numbers). The kernel needs the key and value types from BTF to create
//! a local-storage map, which is why a legacy map definition cannot do.

use aya_ebpf::{
    bindings::{bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE, BPF_F_NO_PREALLOC},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_delete, bpf_task_storage_get},
};
use core::ffi::c_void;

/// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
const CREATE: u64 = 1;

#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders for the loader and are never dereferenced; the
// kernel synchronises access to the storage itself.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    #[inline(always)]
    fn as_ptr(&self) -> *mut c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }

    /// The current task's value, if it has one.
    #[inline(always)]
    pub fn current(&self) -> Option<*mut T> {
        let task = unsafe { bpf_get_current_task_btf() };
        let value = unsafe { bpf_task_storage_get(self.as_ptr(), task, core::ptr::null_mut(), 0) };
        (!value.is_null()).then_some(value.cast())
    }

    /// Replaces the current task's value with a copy of `*init`. Returns false if the
    /// kernel could not allocate it.
    #[inline(always)]
    pub fn replace_current(&self, init: *mut T) -> bool {
        let task = unsafe { bpf_get_current_task_btf() };
        // Creating keeps an existing value as it is, so an old one goes first.
        unsafe { bpf_task_storage_delete(self.as_ptr(), task) };
        let value = unsafe { bpf_task_storage_get(self.as_ptr(), task, init.cast(), CREATE) };
        !value.is_null()
    }

    /// Frees the current task's value.
    #[inline(always)]
    pub fn delete_current(&self) {
        let task = unsafe { bpf_get_current_task_btf() };
        unsafe { bpf_task_storage_delete(self.as_ptr(), task) };
    }
}
