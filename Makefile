# Two entry points on a fresh machine: `make lab` (JupyterLab on labs/) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The GPU wheel where an NVIDIA driver is present, the CPU wheel elsewhere.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
NBVAL := --nbval --nbval-cell-timeout=900 -p no:cacheprovider
# JupyterLab refuses to start as root without --allow-root, and students run as root in
# the lab's containers: the flag is added only for root.  In a container the page must be
# reachable from outside it, so the server listens on every address there.
LAB_UID ?= $(shell id -u)
LAB_PORT ?= 8888
LAB_IP ?= $(shell test -f /.dockerenv -o -f /run/.containerenv && echo 0.0.0.0 || echo localhost)
LAB_FLAGS := --notebook-dir=labs --ip=$(LAB_IP) --port=$(LAB_PORT) \
	$(if $(filter 0,$(LAB_UID)),--allow-root --no-browser)
LAB_PAGE := http://$(if $(filter 0.0.0.0,$(LAB_IP)),<this machine's address>,localhost):$(LAB_PORT)/lab

.PHONY: setup lab test lint unit notebooks release check-release doctor clean messages

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(TF_EXTRA),dev]"
	touch $@

setup: $(BIN)/.installed

lab: setup
	@echo "JupyterLab: open $(LAB_PAGE) and give it the token from the link printed below."
	$(BIN)/jupyter lab $(LAB_FLAGS)

lint: setup
	$(BIN)/ruff check gan_course tests bench conftest.py

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

test: lint unit check-release doctor notebooks

release: setup
	$(BIN)/gan-course release

clean:
	rm -rf $(VENV) build *.egg-info

# The library's messages: extract them into the template, then merge it into the Chinese catalogue.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --omit-header -w 200 -o gan_course/locale/gan_course.pot .
	$(BIN)/pybabel update -i gan_course/locale/gan_course.pot -d gan_course/locale -D gan_course -l zh_CN --no-wrap
