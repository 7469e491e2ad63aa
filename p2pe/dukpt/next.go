package dukpt

// Next returns the KSN of the next transaction: k with the counter advanced
// by NextAESCounter. It returns ErrExhausted after the last counter.
func (k AESKSN) Next() (AESKSN, error) {
	c, err := NextAESCounter(k.Counter())
	if err != nil {
		return k, err
	}
	return NewAESKSN(k.InitialKeyID(), c), nil
}
