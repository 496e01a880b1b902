package catalog

import (
	"fmt"
	"maps"
)

// Apply carries out one command on the state. It either changes the state
// completely and returns the affected record (a copy), or leaves the state
// untouched and returns an error wrapping one of the sentinel errors. It
// reads no clock and no randomness: times and ids come in the command.
func (s *State) Apply(c Command) (any, error) {
	switch c := c.(type) {
	case *CreateVolume:
		return s.createVolume(c)
	case *SetVolumeState:
		return s.setVolumeState(c)
	case *DeleteVolume:
		return s.deleteVolume(c)
	case *RemoveVolume:
		return s.removeVolume(c)
	case *CreateSnapshot:
		return s.createSnapshot(c)
	case *SetSnapshotState:
		return s.setSnapshotState(c)
	case *DeleteSnapshot:
		return s.deleteSnapshot(c)
	case *RemoveSnapshot:
		return s.removeSnapshot(c)
	case *GrantAccess:
		return s.grantAccess(c)
	case *RevokeAccess:
		return s.revokeAccess(c)
	case *CreateOperation:
		return s.createOperation(c)
	case *UpdateOperation:
		return s.updateOperation(c)
	case *CancelOperation:
		return s.cancelOperation(c)
	case *UpsertNode:
		return s.upsertNode(c)
	case *SetVolumeSize:
		return s.setVolumeSize(c)
	}
	return nil, fmt.Errorf("apply %T: %w", c, ErrUnknownCommand)
}

func (s *State) createVolume(c *CreateVolume) (any, error) {
	if c.Name == "" || c.BlockSize == 0 || c.SizeBytes == 0 || c.SizeBytes%uint64(c.BlockSize) != 0 {
		return nil, fmt.Errorf("create volume %q: %w", c.Name, ErrInvalid)
	}
	if c.RequestID != "" {
		if name, ok := s.RequestIDs[c.RequestID]; ok {
			v := s.Volumes[name]
			if v != nil && name == c.Name && v.SizeBytes == c.SizeBytes && sameSource(v.Source, c.Source) && maps.Equal(v.Labels, c.Labels) {
				return *v, nil
			}
			return nil, refuse(ErrAlreadyExists, "request id %q was already used for volume %q with other arguments", c.RequestID, name)
		}
	}
	if _, ok := s.Volumes[c.Name]; ok {
		return nil, exists("volume %q", c.Name)
	}
	if len(s.Volumes) >= s.Limits.MaxVolumes {
		return nil, limit("at most %d volumes", s.Limits.MaxVolumes)
	}
	if c.Source != nil {
		sn, ok := s.Snapshots[snapKey(c.Source.Volume, c.Source.Snapshot)]
		if !ok {
			return nil, notFound("source snapshot %s", c.Source)
		}
		if sn.State != SnapshotReady {
			return nil, precondition("source snapshot %s is %s, not ready", c.Source, sn.State)
		}
		if c.SizeBytes < sn.SizeBytes {
			return nil, precondition("clone size %d is smaller than snapshot %s (%d bytes)", c.SizeBytes, c.Source, sn.SizeBytes)
		}
	}
	v := &Volume{
		Name:       c.Name,
		SizeBytes:  c.SizeBytes,
		BlockSize:  c.BlockSize,
		Labels:     maps.Clone(c.Labels),
		State:      VolumeCreating,
		Node:       c.Node,
		RequestID:  c.RequestID,
		CreateTime: c.Time,
		UpdateTime: c.Time,
	}
	if c.Source != nil {
		src := *c.Source
		v.Source = &src
	}
	s.Volumes[c.Name] = v
	if c.RequestID != "" {
		s.RequestIDs[c.RequestID] = c.Name
	}
	return *v, nil
}

func sameSource(a, b *SnapshotRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (s *State) setVolumeState(c *SetVolumeState) (any, error) {
	v, ok := s.Volumes[c.Name]
	if !ok {
		return nil, notFound("volume %q", c.Name)
	}
	if !CanTransition(v.State, c.State) {
		return nil, precondition("volume %q cannot go from %s to %s", c.Name, v.State, c.State)
	}
	v.State, v.Reason, v.UpdateTime = c.State, c.Reason, c.Time
	return *v, nil
}

func (s *State) deleteVolume(c *DeleteVolume) (any, error) {
	v, ok := s.Volumes[c.Name]
	if !ok {
		return nil, notFound("volume %q", c.Name)
	}
	if v.State == VolumeDeleting {
		return *v, nil
	}
	// Collect the whole tree first so that a refusal changes nothing.
	victims := []*Volume{v}
	for i := 0; i < len(victims); i++ {
		clones := s.Clones(victims[i].Name, "")
		if len(clones) > 0 && !c.Cascade {
			return nil, precondition("volume %q has linked clones (%s); delete them first or cascade", c.Name, clones[0].Name)
		}
		victims = append(victims, clones...)
	}
	if !c.Cascade {
		if ex := s.VolumeExports(c.Name); len(ex) > 0 {
			return nil, precondition("volume %q is exported to %s; revoke access first or cascade", c.Name, ex[0].InitiatorIQN)
		}
		if sn := s.VolumeSnapshots(c.Name); len(sn) > 0 {
			return nil, precondition("volume %q has snapshot %q; delete snapshots first or cascade", c.Name, sn[0].Name)
		}
	}
	for _, vv := range victims {
		for _, e := range s.VolumeExports(vv.Name) {
			delete(s.Exports, exportKey(e.Volume, e.InitiatorIQN))
		}
		for _, sn := range s.VolumeSnapshots(vv.Name) {
			sn.State = SnapshotDeleting
		}
		vv.State, vv.Reason, vv.UpdateTime = VolumeDeleting, "", c.Time
	}
	return *v, nil
}

func (s *State) removeVolume(c *RemoveVolume) (any, error) {
	v, ok := s.Volumes[c.Name]
	if !ok {
		return nil, nil // already gone: removal is idempotent
	}
	if v.State != VolumeDeleting {
		return nil, precondition("volume %q is %s, not deleting", c.Name, v.State)
	}
	if cl := s.Clones(c.Name, ""); len(cl) > 0 {
		return nil, precondition("volume %q still has clone %q", c.Name, cl[0].Name)
	}
	for _, sn := range s.VolumeSnapshots(c.Name) {
		delete(s.Snapshots, snapKey(sn.Volume, sn.Name))
	}
	if v.RequestID != "" {
		delete(s.RequestIDs, v.RequestID)
	}
	delete(s.Volumes, c.Name)
	return nil, nil
}

func (s *State) createSnapshot(c *CreateSnapshot) (any, error) {
	v, ok := s.Volumes[c.Volume]
	if !ok {
		return nil, notFound("volume %q", c.Volume)
	}
	if v.State != VolumeAvailable && v.State != VolumeInUse {
		return nil, precondition("volume %q is %s; snapshots need it available or in use", c.Volume, v.State)
	}
	if _, ok := s.Snapshots[snapKey(c.Volume, c.Name)]; ok {
		return nil, exists("snapshot %s@%s", c.Volume, c.Name)
	}
	if n := len(s.VolumeSnapshots(c.Volume)); n >= s.Limits.MaxSnapshotsPerVolume {
		return nil, limit("at most %d snapshots per volume", s.Limits.MaxSnapshotsPerVolume)
	}
	sn := &Snapshot{Volume: c.Volume, Name: c.Name, SizeBytes: v.SizeBytes, State: SnapshotCreating, CreateTime: c.Time}
	s.Snapshots[snapKey(c.Volume, c.Name)] = sn
	return *sn, nil
}

func (s *State) setSnapshotState(c *SetSnapshotState) (any, error) {
	sn, ok := s.Snapshots[snapKey(c.Volume, c.Name)]
	if !ok {
		return nil, notFound("snapshot %s@%s", c.Volume, c.Name)
	}
	if sn.State == SnapshotDeleting && c.State != SnapshotDeleting {
		return nil, precondition("snapshot %s@%s is deleting", c.Volume, c.Name)
	}
	sn.State, sn.Reason = c.State, c.Reason
	return *sn, nil
}

func (s *State) deleteSnapshot(c *DeleteSnapshot) (any, error) {
	sn, ok := s.Snapshots[snapKey(c.Volume, c.Name)]
	if !ok {
		return nil, notFound("snapshot %s@%s", c.Volume, c.Name)
	}
	if cl := s.Clones(c.Volume, c.Name); len(cl) > 0 {
		return nil, precondition("snapshot %s@%s has linked clone %q; delete it first", c.Volume, c.Name, cl[0].Name)
	}
	for _, o := range s.Operations {
		if o.Kind == OpRevert && o.Volume == c.Volume && o.Snapshot == c.Name && !o.State.Final() {
			return nil, precondition("snapshot %s@%s is being reverted to by operation %s", c.Volume, c.Name, o.ID)
		}
	}
	sn.State, sn.Reason = SnapshotDeleting, ""
	return *sn, nil
}

func (s *State) removeSnapshot(c *RemoveSnapshot) (any, error) {
	sn, ok := s.Snapshots[snapKey(c.Volume, c.Name)]
	if !ok {
		return nil, nil
	}
	if sn.State != SnapshotDeleting {
		return nil, precondition("snapshot %s@%s is %s, not deleting", c.Volume, c.Name, sn.State)
	}
	delete(s.Snapshots, snapKey(c.Volume, c.Name))
	return nil, nil
}

func (s *State) grantAccess(c *GrantAccess) (any, error) {
	v, ok := s.Volumes[c.Volume]
	if !ok {
		return nil, notFound("volume %q", c.Volume)
	}
	if v.State != VolumeAvailable && v.State != VolumeInUse {
		return nil, precondition("volume %q is %s; access needs it available", c.Volume, v.State)
	}
	if busy := s.activeOp(c.Volume, OpRevert); busy != nil {
		return nil, precondition("volume %q is being reverted by operation %s", c.Volume, busy.ID)
	}
	key := exportKey(c.Volume, c.InitiatorIQN)
	if _, ok := s.Exports[key]; !ok && len(s.VolumeExports(c.Volume)) >= s.Limits.MaxExportsPerVolume {
		return nil, limit("at most %d grants per volume", s.Limits.MaxExportsPerVolume)
	}
	e := &Export{Volume: c.Volume, InitiatorIQN: c.InitiatorIQN, TargetIQN: c.TargetIQN, Portal: c.Portal, CreateTime: c.Time}
	if old, ok := s.Exports[key]; ok {
		e.CreateTime = old.CreateTime
	}
	if c.CHAP != nil {
		ch := *c.CHAP
		e.CHAP = &ch
	}
	s.Exports[key] = e
	if v.State == VolumeAvailable {
		v.State, v.UpdateTime = VolumeInUse, c.Time
	}
	return *e, nil
}

func (s *State) revokeAccess(c *RevokeAccess) (any, error) {
	v, ok := s.Volumes[c.Volume]
	if !ok {
		return nil, notFound("volume %q", c.Volume)
	}
	key := exportKey(c.Volume, c.InitiatorIQN)
	if _, ok := s.Exports[key]; !ok {
		return nil, notFound("export of volume %q to %q", c.Volume, c.InitiatorIQN)
	}
	delete(s.Exports, key)
	if v.State == VolumeInUse && len(s.VolumeExports(c.Volume)) == 0 {
		v.State, v.UpdateTime = VolumeAvailable, c.Time
	}
	return nil, nil
}

// activeOp returns an unfinished operation of the given kind on a volume.
func (s *State) activeOp(volume string, kind OpKind) *Operation {
	for _, o := range s.SortedOperations() {
		if o.Volume == volume && o.Kind == kind && !o.State.Final() {
			return o
		}
	}
	return nil
}

func (s *State) createOperation(c *CreateOperation) (any, error) {
	if c.ID == "" {
		return nil, fmt.Errorf("create operation without id: %w", ErrInvalid)
	}
	if _, ok := s.Operations[c.ID]; ok {
		return nil, exists("operation %s", c.ID)
	}
	v, ok := s.Volumes[c.Volume]
	if !ok {
		return nil, notFound("volume %q", c.Volume)
	}
	if v.State != VolumeAvailable && v.State != VolumeInUse {
		return nil, precondition("volume %q is %s", c.Volume, v.State)
	}
	for _, k := range []OpKind{OpResize, OpRevert, OpFlatten} {
		if busy := s.activeOp(c.Volume, k); busy != nil {
			return nil, precondition("volume %q is busy with %s operation %s", c.Volume, busy.Kind, busy.ID)
		}
	}
	switch c.Kind {
	case OpResize:
		if c.SizeBytes <= v.SizeBytes {
			return nil, precondition("volume %q is %d bytes; resize only grows it", c.Volume, v.SizeBytes)
		}
		if c.SizeBytes%uint64(v.BlockSize) != 0 {
			return nil, fmt.Errorf("resize volume %q to %d: not a multiple of %d: %w", c.Volume, c.SizeBytes, v.BlockSize, ErrInvalid)
		}
	case OpRevert:
		sn, ok := s.Snapshots[snapKey(c.Volume, c.Snapshot)]
		if !ok {
			return nil, notFound("snapshot %s@%s", c.Volume, c.Snapshot)
		}
		if sn.State != SnapshotReady {
			return nil, precondition("snapshot %s@%s is %s, not ready", c.Volume, c.Snapshot, sn.State)
		}
		if ex := s.VolumeExports(c.Volume); len(ex) > 0 {
			return nil, precondition("volume %q is exported to %s; revoke access before reverting", c.Volume, ex[0].InitiatorIQN)
		}
	case OpFlatten:
		if v.Source == nil {
			return nil, precondition("volume %q is not a linked clone; there is nothing to flatten", c.Volume)
		}
	default:
		return nil, fmt.Errorf("create operation of kind %q: %w", c.Kind, ErrInvalid)
	}
	s.pruneOperations()
	o := &Operation{ID: c.ID, Kind: c.Kind, Volume: c.Volume, SizeBytes: c.SizeBytes, Snapshot: c.Snapshot,
		State: OpPending, CreateTime: c.Time, UpdateTime: c.Time}
	s.Operations[c.ID] = o
	return *o, nil
}

// pruneOperations drops the oldest final operations beyond the limit.
func (s *State) pruneOperations() {
	kept := 0
	for _, o := range s.SortedOperations() {
		if !o.State.Final() {
			continue
		}
		kept++
		if kept >= s.Limits.MaxFinishedOperations {
			delete(s.Operations, o.ID)
		}
	}
}

func (s *State) updateOperation(c *UpdateOperation) (any, error) {
	o, ok := s.Operations[c.ID]
	if !ok {
		return nil, notFound("operation %s", c.ID)
	}
	if o.State.Final() {
		return nil, precondition("operation %s is already %s", c.ID, o.State)
	}
	if c.Progress > 100 {
		return nil, fmt.Errorf("operation %s progress %d: %w", c.ID, c.Progress, ErrInvalid)
	}
	switch c.State {
	case OpPending, OpRunning, OpSucceeded, OpFailed, OpCancelled:
	default:
		return nil, fmt.Errorf("operation %s state %q: %w", c.ID, c.State, ErrInvalid)
	}
	if c.State == OpSucceeded {
		if v, ok := s.Volumes[o.Volume]; ok {
			switch {
			case o.Kind == OpResize && v.SizeBytes < o.SizeBytes:
				v.SizeBytes, v.UpdateTime = o.SizeBytes, c.Time
			case o.Kind == OpFlatten:
				v.Source, v.UpdateTime = nil, c.Time
			}
		}
	}
	o.State, o.Progress, o.Message, o.UpdateTime = c.State, c.Progress, c.Message, c.Time
	return *o, nil
}

func (s *State) cancelOperation(c *CancelOperation) (any, error) {
	o, ok := s.Operations[c.ID]
	if !ok {
		return nil, notFound("operation %s", c.ID)
	}
	if o.State.Final() {
		return *o, nil
	}
	o.CancelRequested, o.UpdateTime = true, c.Time
	if o.State == OpPending {
		o.State, o.Message = OpCancelled, "cancelled before it started"
	}
	return *o, nil
}

func (s *State) upsertNode(c *UpsertNode) (any, error) {
	if c.Node.Name == "" {
		return nil, fmt.Errorf("upsert node without name: %w", ErrInvalid)
	}
	n := c.Node
	s.Nodes[n.Name] = &n
	return n, nil
}

func (s *State) setVolumeSize(c *SetVolumeSize) (any, error) {
	v, ok := s.Volumes[c.Name]
	if !ok {
		return nil, notFound("volume %q", c.Name)
	}
	if c.SizeBytes < v.SizeBytes {
		return nil, precondition("volume %q cannot shrink from %d to %d", c.Name, v.SizeBytes, c.SizeBytes)
	}
	v.SizeBytes, v.UpdateTime = c.SizeBytes, c.Time
	return *v, nil
}
