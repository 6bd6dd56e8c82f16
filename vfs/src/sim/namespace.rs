//! The namespace of the simulated filesystem: the `Vfs` calls that open, create, rename
//! and remove files and make directories, each taking an operation index and logging one
//! event. Names change in a directory's *visible* entries at once and join its pending
//! operations, durable at its `sync_dir` (or as the profile says: `profile.rs`).

use super::file::{SimFile, SimLock};
use super::path::{join, normalize, split};
use super::{lock, Dir, DirOp, Inode, InodeId, Name, Node, OpKind, SimFs, World};
use crate::{Result, Vfs, VfsError, VfsFile, VfsLock};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

impl SimFs {
    fn open_handle(
        &self,
        op: OpKind,
        path: &Path,
        writable: bool,
        create: bool,
    ) -> Result<Box<dyn VfsFile>> {
        let mut world = lock(&self.world);
        let norm = normalize(op.name(), path)?;
        let index = world.begin(op, path, &norm)?;
        let result = if create {
            Self::create_inode(&mut world, path, &norm)
        } else {
            world.lookup_file(op.name(), path, &norm)
        };
        world.log(index, op, &norm, 0, 0, None, result.is_err());
        let inode = result?;
        Ok(Box::new(SimFile {
            world: Arc::clone(&self.world),
            inode,
            path: path.to_path_buf(),
            name: Arc::from(norm.as_str()),
            epoch: world.epoch,
            writable,
        }))
    }

    fn create_inode(world: &mut World, path: &Path, norm: &str) -> Result<InodeId> {
        let (parent, name) = split(norm);
        if name.is_empty() {
            return Err(VfsError::new(
                "create",
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        match world
            .dir("create", path, parent)?
            .visible
            .get(name)
            .copied()
        {
            Some(Node::Dir) => Err(VfsError::new(
                "create",
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            )),
            Some(Node::File(id)) => {
                world.set_len(id, 0).map_err(|_| {
                    VfsError::new("create", path, ErrorKind::Other, "truncate failed")
                })?;
                Ok(id)
            }
            None => {
                let id = world.next_inode;
                world.next_inode += 1;
                world.inodes.insert(
                    id,
                    Arc::new(Inode {
                        linked: true,
                        ..Inode::default()
                    }),
                );
                let dir = world.dirs.get_mut(parent).expect("checked above");
                let name = Name::from(name);
                dir.visible.insert(Name::clone(&name), Node::File(id));
                world.push_dir_op(parent, DirOp::Link(name, Node::File(id)));
                Ok(id)
            }
        }
    }

    fn create_one_dir(world: &mut World, path: &Path, norm: &str) -> Result<()> {
        let (parent, name) = split(norm);
        if name.is_empty()
            || world
                .dir("create_dir", path, parent)?
                .visible
                .contains_key(name)
        {
            return Err(VfsError::new(
                "create_dir",
                path,
                ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        let dir = world.dirs.get_mut(parent).expect("checked above");
        let name = Name::from(name);
        dir.visible.insert(Name::clone(&name), Node::Dir);
        world.push_dir_op(parent, DirOp::Link(name, Node::Dir));
        world.dirs.insert(norm.to_string(), Dir::default());
        Ok(())
    }
}

impl Vfs for SimFs {
    fn create(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Create, path, true, true)
    }

    fn open_read(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Open, path, false, false)
    }

    fn open_write(&self, path: &Path) -> Result<Box<dyn VfsFile>> {
        self.open_handle(OpKind::Open, path, true, false)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let from_norm = normalize("rename", from)?;
        let to_norm = normalize("rename", to)?;
        let index = world.begin(OpKind::Rename, from, &from_norm)?;
        let result = Self::rename_locked(&mut world, from, &from_norm, to, &to_norm);
        world.log(
            index,
            OpKind::Rename,
            &from_norm,
            0,
            0,
            None,
            result.is_err(),
        );
        result
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("remove", path)?;
        let index = world.begin(OpKind::Remove, path, &norm)?;
        let result = world.lookup_file("remove", path, &norm).map(|id| {
            let (parent, name) = split(&norm);
            let dir = world.dirs.get_mut(parent).expect("lookup found the parent");
            dir.visible.remove(name);
            world.push_dir_op(parent, DirOp::Unlink(Name::from(name)));
            world.unlink_inode(id);
        });
        world.log(index, OpKind::Remove, &norm, 0, 0, None, result.is_err());
        result
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut world = lock(&self.world);
        let norm = normalize("list", dir)?;
        let index = world.begin(OpKind::List, dir, &norm)?;
        let result = world.dir("list", dir, &norm).map(|entries| {
            entries
                .visible
                .keys()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        });
        world.log(index, OpKind::List, &norm, 0, 0, None, result.is_err());
        result
    }

    fn create_dir(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("create_dir", path)?;
        let index = world.begin(OpKind::CreateDir, path, &norm)?;
        let result = Self::create_one_dir(&mut world, path, &norm);
        world.log(index, OpKind::CreateDir, &norm, 0, 0, None, result.is_err());
        result
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("create_dir", path)?;
        let index = world.begin(OpKind::CreateDir, path, &norm)?;
        let mut result = Ok(());
        let mut prefix = String::new();
        for component in norm.split('/').filter(|c| !c.is_empty()) {
            prefix = join(&prefix, component);
            match world.lookup("create_dir", path, &prefix) {
                Ok(Some(Node::Dir)) => continue,
                Ok(Some(Node::File(_))) => {
                    // Like mkdir(2): EEXIST for the last component, ENOTDIR before it.
                    result = Err(if prefix == norm {
                        VfsError::new(
                            "create_dir",
                            path,
                            ErrorKind::AlreadyExists,
                            "a file is in the way",
                        )
                    } else {
                        VfsError::new(
                            "create_dir",
                            path,
                            ErrorKind::NotADirectory,
                            "a file is in the way",
                        )
                    });
                    break;
                }
                Ok(None) => {
                    if let Err(e) = Self::create_one_dir(&mut world, path, &prefix) {
                        result = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        world.log(index, OpKind::CreateDir, &norm, 0, 0, None, result.is_err());
        result
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let mut world = lock(&self.world);
        let norm = normalize("exists", path)?;
        let index = world.begin(OpKind::Exists, path, &norm)?;
        let found = world.lookup("exists", path, &norm).ok().flatten().is_some();
        world.log(index, OpKind::Exists, &norm, 0, 0, None, false);
        Ok(found)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut world = lock(&self.world);
        let norm = normalize("sync_dir", dir)?;
        let index = world.begin(OpKind::SyncDir, dir, &norm)?;
        if let Err(e) = world.dir("sync_dir", dir, &norm) {
            world.log(index, OpKind::SyncDir, &norm, 0, 0, None, true);
            return Err(e);
        }
        let result = world.sync_dir(&norm);
        let fault = result.err();
        world.log(index, OpKind::SyncDir, &norm, 0, 0, fault, fault.is_some());
        match fault {
            None => Ok(()),
            Some(_) => Err(VfsError::new(
                "sync_dir",
                dir,
                ErrorKind::Other,
                "EIO (injected): directory fsync failed",
            )),
        }
    }

    /// A lock is process state, not disk state: it creates no file, is not an operation
    /// (it takes no index, so adding it shifted no seed's fault decisions), and a crash
    /// releases it. A halted machine refuses it like any other call.
    fn lock(&self, path: &Path) -> Result<Box<dyn VfsLock>> {
        let mut world = lock(&self.world);
        let norm = normalize("lock", path)?;
        if world.halted {
            return Err(VfsError::new(
                "lock",
                path,
                ErrorKind::Other,
                "machine halted (simulated crash point)",
            ));
        }
        let (parent, _) = split(&norm);
        world.dir("lock", path, parent)?;
        if world.locks.contains_key(&norm) {
            return Err(VfsError::new(
                "lock",
                path,
                ErrorKind::WouldBlock,
                "held by another open handle",
            ));
        }
        let id = world.next_lock;
        world.next_lock += 1;
        world.locks.insert(norm.clone(), id);
        Ok(Box::new(SimLock {
            world: Arc::clone(&self.world),
            path: norm,
            id,
        }))
    }
}

impl SimFs {
    fn rename_locked(
        world: &mut World,
        from: &Path,
        from_norm: &str,
        to: &Path,
        to_norm: &str,
    ) -> Result<()> {
        let id = match world.lookup("rename", from, from_norm)? {
            Some(Node::File(id)) => id,
            Some(Node::Dir) => {
                return Err(VfsError::new(
                    "rename",
                    from,
                    ErrorKind::Unsupported,
                    "SimFs renames files only",
                ))
            }
            None => {
                return Err(VfsError::new(
                    "rename",
                    from,
                    ErrorKind::NotFound,
                    "no such file",
                ))
            }
        };
        let replaced = match world.lookup("rename", to, to_norm)? {
            Some(Node::Dir) => {
                return Err(VfsError::new(
                    "rename",
                    to,
                    ErrorKind::IsADirectory,
                    "target is a directory",
                ))
            }
            Some(Node::File(old)) => Some(old),
            None => None,
        };
        if from_norm == to_norm {
            return Ok(());
        }
        if let Some(old) = replaced {
            world.unlink_inode(old);
        }
        let (from_parent, from_name) = split(from_norm);
        let (to_parent, to_name) = split(to_norm);
        let node = Node::File(id);
        if from_parent == to_parent {
            let dir = world
                .dirs
                .get_mut(from_parent)
                .expect("lookup found the parent");
            dir.visible.remove(from_name);
            let to_name = Name::from(to_name);
            dir.visible.insert(Name::clone(&to_name), node);
            world.push_dir_op_replacing(
                from_parent,
                DirOp::Rename(Name::from(from_name), to_name, node),
                replaced.is_some(),
            );
        } else {
            let source = world
                .dirs
                .get_mut(from_parent)
                .expect("lookup found the parent");
            source.visible.remove(from_name);
            world.push_dir_op(from_parent, DirOp::Unlink(Name::from(from_name)));
            let target = world
                .dirs
                .get_mut(to_parent)
                .expect("lookup found the parent");
            let to_name = Name::from(to_name);
            target.visible.insert(Name::clone(&to_name), node);
            world.push_dir_op(to_parent, DirOp::Link(to_name, node));
        }
        Ok(())
    }
}
