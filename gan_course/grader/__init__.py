"""The autograder's stages, one module each (`gan_course.grade` runs them in order).

read      submissions in: safe file opening, notebooks, which notebook and lab per student
locate    each exercise's cell (by its marker line) and the lab's setup code
run       the trusted parent's side: bubblewrap, warm worker slots, frames in
worker    inside a slot: the warm worker and its process per notebook
sandbox   inside a slot: one exercise's namespaces, tmpfs and hard limits
exercise  inside an exercise's sandbox: the setup, the cell, the function on the cases
wire      what crosses from a child to the parent: arrays and JSON, checked against a schema
judge     statuses and messages, from the same verdict code as `gc.check`
report    grades.csv, results.json and the feedback Markdown
"""
