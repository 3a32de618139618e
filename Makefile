# Two entry points on a fresh machine: `make lab` (JupyterLab on labs/) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The GPU wheel where an NVIDIA driver is present, the CPU wheel elsewhere.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
NBVAL := --nbval --nbval-cell-timeout=900 -p no:cacheprovider

.PHONY: setup lab test unit notebooks release check-release doctor clean messages

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(TF_EXTRA),dev]"
	touch $@

setup: $(BIN)/.installed

lab: setup
	$(BIN)/jupyter lab --notebook-dir=labs

unit: setup
	$(BIN)/python -m pytest -q tests

# Both languages: labs/ and labs/zh/, solutions/zh/, and every Chinese catalogue complete and current.
check-release: setup
	$(BIN)/gan-course release --check

doctor: setup
	$(BIN)/gan-course doctor

# labs/ and solutions/ include their Chinese editions (labs/zh/, solutions/zh/): pytest collects
# the folders recursively, so both languages run (the solutions strict).
notebooks: setup
	GAN_COURSE_PROFILE=$${GAN_COURSE_PROFILE:-smoke} $(BIN)/python -m pytest -q $(NBVAL) labs/
	GAN_COURSE_PROFILE=$${GAN_COURSE_PROFILE:-smoke} GAN_COURSE_STRICT=1 $(BIN)/python -m pytest -q $(NBVAL) solutions/

test: unit check-release doctor notebooks

release: setup
	$(BIN)/gan-course release

clean:
	rm -rf $(VENV) build *.egg-info

# The library's messages: extract them into the template, then merge it into the Chinese catalogue.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --omit-header -w 200 -o gan_course/locale/gan_course.pot .
	$(BIN)/pybabel update -i gan_course/locale/gan_course.pot -d gan_course/locale -D gan_course -l zh_CN --no-wrap
