"""The autograder's stages, one module each (`gan_course.grade` runs them in order).

read     submissions in: safe file opening, notebooks, which notebook and lab per student
locate   each exercise's cell (by its marker line) and the lab's setup code
run      the trusted parent's side: sandboxes (bubblewrap), worker slots, the reference
worker   the sandbox's side: one process per exercise, in fresh namespaces
wire     what crosses from a child to the parent: arrays and JSON, checked against a schema
judge    statuses and messages, from the same verdict code as `gc.check`
report   grades.csv, results.json and the feedback Markdown
"""
