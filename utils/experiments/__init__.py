"""The course's reference runs, one module per task: `sentiment` (lessons 01, 02, 07),
`translation` (03, 04, 08), `text_to_text` (09), `attention_heads` (06), `norm_placement`
(07) and `recall` (07); `common` holds what they share. The rows of the shared results table are listed in
`utils.results.EXPERIMENTS`."""
