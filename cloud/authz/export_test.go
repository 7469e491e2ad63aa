package authz

// SetTrace makes s report the name of each check of a pipeline as it is
// about to run.
func SetTrace(s *Switch, f func(check string)) { s.trace = f }

// Check is one check of a pipeline as the tests and the documentation see
// it.
type Check struct {
	Name, Phase string
	Codes       []string
}

// PipelineOf returns the checks of the pipeline r goes through, in order.
func PipelineOf(r Request) []Check { return checksOf(pipelineFor(r)) }

func checksOf(p *pipeline) []Check {
	var cs []Check
	for _, c := range p.checks {
		var codes []string
		for _, a := range c.codes {
			codes = append(codes, string(a))
		}
		cs = append(cs, Check{Name: c.name, Phase: c.phase.String(), Codes: codes})
	}
	return cs
}

// Pipelines returns every pipeline's name and checks.
func Pipelines() map[string][]Check {
	m := map[string][]Check{}
	for _, p := range []*pipeline{&authorizationPipeline, &financialPipeline, &refundPipeline, &advicePipeline} {
		m[p.name] = checksOf(p)
	}
	return m
}
