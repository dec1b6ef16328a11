package testbed

// Kill ends the process with SIGKILL, as a crash would, and waits until it is gone.
func (p *Process) Kill() error {
	if ok, _ := p.Exited(); ok {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	<-p.done
	return nil
}
