//! The rendered files read back by independent readers: a small parser of
//! systemd's unit syntax and of its EnvironmentFile= rules written here, the
//! real python3 on gunicorn.conf.py, and the real `systemd-analyze verify`.
//!
//! python3 and systemd-analyze are part of every machine this runs on
//! (Debian's base system); a missing one fails the test, never skips it.

mod wsgi_render {

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use proptest::prelude::*;
    use serde_json::{Value, json};
    use wsgi_layer::config::Config;
    use wsgi_layer::config::envvars;
    use wsgi_layer::config::layer_options::LayerOptions;
    use wsgi_layer::config::paths::{AppName, AppPaths};
    use wsgi_layer::render::envfile::{merge, parse_env_file, render_env_file};
    use wsgi_layer::render::gunicorn_conf::{GunicornSpec, render_gunicorn_conf};
    use wsgi_layer::render::unit::{UnitSpec, render_unit};
    use wsgi_layer::render::{DesiredState, RelationInputs, Serving};

    // ---------------------------------------------------------------- tools

    /// The tool's path; a missing one fails the test.
    fn tool(path: &str) -> PathBuf {
        let p = PathBuf::from(path);
        assert!(p.exists(), "{path} is missing: install python3 and systemd");
        p
    }

    // ---------------------------------------------------------------- systemd unit syntax

    /// One directive: section, key, raw value.
    type Directive = (String, String, String);

    /// Parse a unit file as systemd's conf-parser does: lines split on `\n`
    /// (and `\r`, which systemd's line reader also ends a line at), comments
    /// (`#`, `;`) and empty lines skipped, a line ending in a backslash continued
    /// on the next one (the backslash becomes a space), `[Section]` headers,
    /// `Key=Value` with whitespace around both trimmed.
    fn parse_unit(text: &str) -> Result<Vec<Directive>, String> {
        let mut out = Vec::new();
        let mut section = String::new();
        let mut pending: Option<String> = None;
        for raw in text.split(['\n', '\r']) {
            // systemd strips each line before anything else.
            let l = raw.trim();
            let line = match pending.take() {
                // Comment lines inside a continuation are skipped by systemd.
                Some(p) if l.starts_with(['#', ';']) => {
                    pending = Some(p);
                    continue;
                }
                Some(mut p) => {
                    p.push_str(l);
                    p
                }
                None if l.is_empty() || l.starts_with(['#', ';']) => continue,
                None => l.to_owned(),
            };
            // A trailing backslash continues the line; it becomes a space.
            if let Some(stripped) = line.strip_suffix('\\') {
                pending = Some(format!("{stripped} "));
                continue;
            }
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                let name = trimmed
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .ok_or_else(|| format!("bad section line {trimmed:?}"))?;
                section = name.to_owned();
                continue;
            }
            let (k, v) = trimmed
                .split_once('=')
                .ok_or_else(|| format!("line without '=': {trimmed:?}"))?;
            out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        }
        if pending.is_some() {
            return Err("continuation at end of file".into());
        }
        Ok(out)
    }

    /// Specifier expansion on a whole value: `%%` → `%`; any other specifier is
    /// an error here (the renderer never means one).
    fn expand_specifiers(v: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = v.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('%') => out.push('%'),
                    other => return Err(format!("specifier %{other:?} in {v:?}")),
                }
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// systemd's `cunescape_one` for the escapes that can follow a backslash.
    fn cunescape(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let c = chars.next().ok_or("backslash at end")?;
        let simple = match c {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            's' => Some(b' '),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        if c == 'x' {
            let hex: String = [chars.next(), chars.next()].into_iter().flatten().collect();
            let b = u8::from_str_radix(&hex, 16).map_err(|_| format!("bad \\x{hex}"))?;
            if b == 0 {
                return Err("\\x00".into());
            }
            out.push(b);
            return Ok(());
        }
        Err(format!("unknown escape \\{c}"))
    }

    /// Split an `ExecStart=` value into argv as systemd does: specifiers on the
    /// whole value, then words (`EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE`: double and
    /// single quotes, C escapes inside and outside quotes; an unquoted `;` word
    /// separates commands, an error here), then `$$` → `$` per word (a lone `$`
    /// would be a variable reference, an error here).
    fn exec_argv(value: &str) -> Result<Vec<String>, String> {
        let v = expand_specifiers(value)?;
        let mut words = Vec::new();
        let mut chars = v.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut word: Vec<u8> = Vec::new();
            let mut quoted = false;
            let mut quote: Option<char> = None;
            while let Some(&c) = chars.peek() {
                match quote {
                    None if c.is_whitespace() => break,
                    None if c == '"' || c == '\'' => {
                        chars.next();
                        quote = Some(c);
                        quoted = true;
                    }
                    Some(q) if c == q => {
                        chars.next();
                        quote = None;
                    }
                    _ if c == '\\' => {
                        chars.next();
                        cunescape(&mut chars, &mut word)?;
                    }
                    _ => {
                        chars.next();
                        let mut buf = [0u8; 4];
                        word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            if quote.is_some() {
                return Err("unterminated quote".into());
            }
            let word = String::from_utf8(word).map_err(|e| e.to_string())?;
            if word == ";" && !quoted {
                return Err("unquoted ; separates commands".into());
            }
            // $ expansion at exec time.
            let mut out = String::new();
            let mut cs = word.chars();
            while let Some(c) = cs.next() {
                if c == '$' {
                    match cs.next() {
                        Some('$') => out.push('$'),
                        other => return Err(format!("variable reference ${other:?}")),
                    }
                } else {
                    out.push(c);
                }
            }
            words.push(out);
        }
        Ok(words)
    }

    fn layer() -> LayerOptions {
        LayerOptions::for_app(&AppName::new("hello").unwrap())
    }

    fn paths() -> AppPaths {
        AppPaths::new(&layer().application_root, &AppName::new("hello").unwrap()).unwrap()
    }

    /// The directives of a unit rendered from a known-good config with the
    /// same log-file choice, i.e. what any rendered unit must have.
    fn baseline(log: bool) -> Vec<Directive> {
        let log = if log {
            "/var/log/wsgi.service.log"
        } else {
            "none"
        };
        let c = Config::from_json(&json!({"wsgi_logfile_path": log}), 2).unwrap();
        parse_unit(&render_unit(&UnitSpec::new(&c, &layer(), &paths())).unwrap()).unwrap()
    }

    /// Check one rendered unit: no control character but `\n`, the same
    /// directives as the baseline in the same order, every value equal except
    /// the ones that carry config, and those read back to what was meant.
    fn check_unit(spec: &UnitSpec, text: &str) -> Result<(), TestCaseError> {
        prop_assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "control character in unit"
        );
        let got = parse_unit(text).map_err(TestCaseError::fail)?;
        let want = baseline(spec.log_file.is_some());
        let keys = |d: &[Directive]| {
            d.iter()
                .map(|(s, k, _)| format!("{s}.{k}"))
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(keys(&got), keys(&want));
        for ((_, k, v), (_, _, w)) in got.iter().zip(&want) {
            match k.as_str() {
                "ExecStart" => {
                    let argv = exec_argv(v).map_err(TestCaseError::fail)?;
                    prop_assert_eq!(argv, spec.argv());
                }
                "User" | "Group" => prop_assert_eq!(v, &spec.user),
                "WorkingDirectory" => {
                    prop_assert_eq!(Path::new(v), spec.working_directory.as_path());
                }
                "ReadWritePaths" => {
                    prop_assert_eq!(Some(Path::new(v)), spec.log_file.as_deref());
                }
                _ => prop_assert_eq!(v, w, "directive {}", k),
            }
        }
        Ok(())
    }

    /// A string option: often a plausible value, often hostile.
    fn string_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z]{1,8}(\\.[a-z]{1,8})?:[a-z]{1,8}",
            "/var/log/[a-z]{1,8}(/[a-z.]{1,8})?",
            "(--graceful-timeout [0-9]{1,3} |--backlog=[0-9]{1,4} |--forwarded-allow-ips=[*0-9., ]{1,10} |--access-logformat '[a-z%()\" $\\\\;#]{0,12}' )*",
            "[A-Z]{1,4}=[a-z \"'\\\\%$;=\n\r]{0,10}",
            "[ -~\n\r\t]{0,30}",
            any::<String>(),
        ]
    }

    fn int_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..70_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    const STRING_OPTIONS: &[&str] = &[
        "wsgi_module",
        "provision_command",
        "pip_cache_dir",
        "wsgi_logfile_path",
        "apt_dependencies",
        "environment_variables",
        "worker_class",
        "health_check_path",
        "extra_gunicorn_args",
        "database_name",
        "database_roles",
        "database_extensions",
    ];
    const INT_OPTIONS: &[&str] = &[
        "port",
        "provision_timeout",
        "workers",
        "threads",
        "timeout",
        "keepalive",
        "max_requests",
        "health_check_timeout",
    ];

    fn config_json() -> impl Strategy<Value = Value> {
        (
            proptest::collection::vec(proptest::option::of(string_value()), STRING_OPTIONS.len()),
            proptest::collection::vec(proptest::option::of(int_value()), INT_OPTIONS.len()),
        )
            .prop_map(|(strings, ints)| {
                let mut map = serde_json::Map::new();
                for (name, v) in STRING_OPTIONS.iter().zip(strings) {
                    if let Some(v) = v {
                        map.insert((*name).into(), Value::from(v));
                    }
                }
                for (name, v) in INT_OPTIONS.iter().zip(ints) {
                    if let Some(v) = v {
                        map.insert((*name).into(), v);
                    }
                }
                Value::Object(map)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(512)))]

        /// No config value can add a line or a directive to the unit, and
        /// ExecStart reads back as exactly the intended argv.
        #[test]
        fn no_config_value_changes_the_unit_shape(j in config_json()) {
            // Drop the options the validator refused, so every case renders a unit
            // with all the values that were accepted, hostile ones included.
            let mut j = j;
            let c = loop {
                match Config::from_json(&j, 2) {
                    Ok(c) => break c,
                    Err(errors) => {
                        for e in errors.0 {
                            j.as_object_mut().unwrap().remove(e.option);
                        }
                    }
                }
            };
            let spec = UnitSpec::new(&c, &layer(), &paths());
            let text = render_unit(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_unit(&spec, &text)?;
        }

        /// The quoting alone holds, whatever the arguments (the allow-list not
        /// even consulted): any string but NUL is one argv word.
        #[test]
        fn any_exec_word_reads_back(args in proptest::collection::vec("[^\0]{0,12}", 0..6), low in any::<bool>()) {
            let c = Config::from_json(&json!({"port": if low { 80 } else { 8080 }}), 2).unwrap();
            let mut spec = UnitSpec::new(&c, &layer(), &paths());
            spec.extra_args = args;
            let text = render_unit(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_unit(&spec, &text)?;
        }

        /// Hostile user names and paths in a spec are refused, never rendered.
        #[test]
        fn hostile_spec_fields_are_refused(user in "[ -~\n]{0,12}", dir in "/[ -~\n]{0,20}") {
            let c = Config::from_json(&json!({}), 2).unwrap();
            let mut spec = UnitSpec::new(&c, &layer(), &paths());
            spec.user = user;
            spec.working_directory = PathBuf::from(dir);
            if let Ok(text) = render_unit(&spec) {
                check_unit(&spec, &text)?;
                let user_line = format!("\nUser={}\n", spec.user);
                let dir_line = format!("\nWorkingDirectory={}\n", spec.working_directory.display());
                prop_assert!(text.contains(&user_line), "User= line");
                prop_assert!(text.contains(&dir_line), "WorkingDirectory= line");
            }
        }
    }

    #[test]
    fn the_unit_parser_knows_systemd_syntax() {
        let d = parse_unit("# c\n[A]\nK = v \\\n  w\n; c\nL=\"x\"\n").unwrap();
        assert_eq!(
            d,
            vec![
                ("A".into(), "K".into(), "v  w".into()),
                ("A".into(), "L".into(), "\"x\"".into())
            ]
        );
        assert_eq!(
            exec_argv(r#"/bin/a "b c" d\x20e 'f"g' "%%$$" "\n""#).unwrap(),
            vec!["/bin/a", "b c", "d e", "f\"g", "%$", "\n"]
        );
        assert!(exec_argv("/bin/a ; /bin/b").is_err());
        assert!(exec_argv("/bin/a %n").is_err());
        assert!(exec_argv("/bin/a $X").is_err());
    }

    // ---------------------------------------------------------------- EnvironmentFile= rules

    /// systemd 252's env-file.c state machine (`parse_env_file_internal` with
    /// `load_env_file_push`), ported: what `EnvironmentFile=` gives the service.
    fn systemd_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            PreKey,
            Key,
            PreValue,
            Value,
            ValueEscape,
            Single,
            Double,
            DoubleEscape,
            Comment,
            CommentEscape,
        }
        const NEWLINE: &[char] = &['\n', '\r'];
        const WS: &[char] = &[' ', '\t', '\n', '\r'];
        const NEED_ESCAPE: &[char] = &['"', '\\', '`', '$'];
        let mut out = BTreeMap::new();
        let mut push = |key: &str, value: &str| -> Result<(), String> {
            let key = key.trim_end_matches(WS);
            if !envvars::is_valid_key(key) {
                return Err(format!("invalid key {key:?}"));
            }
            out.insert(key.to_owned(), value.to_owned());
            Ok(())
        };
        let (mut key, mut value) = (String::new(), String::new());
        let mut last_value_ws: Option<usize> = None;
        let mut state = S::PreKey;
        for c in text.chars() {
            state = match state {
                S::PreKey if ['#', ';'].contains(&c) => S::Comment,
                S::PreKey if WS.contains(&c) => S::PreKey,
                S::PreKey => {
                    key.clear();
                    key.push(c);
                    S::Key
                }
                S::Key if NEWLINE.contains(&c) => S::PreKey,
                S::Key if c == '=' => {
                    value.clear();
                    last_value_ws = None;
                    S::PreValue
                }
                S::Key => {
                    key.push(c);
                    S::Key
                }
                S::PreValue if NEWLINE.contains(&c) => {
                    push(&key, &value)?;
                    S::PreKey
                }
                S::PreValue if c == '\'' => S::Single,
                S::PreValue if c == '"' => S::Double,
                S::PreValue if c == '\\' => S::ValueEscape,
                S::PreValue if WS.contains(&c) => S::PreValue,
                S::PreValue => {
                    value.push(c);
                    S::Value
                }
                S::Value if NEWLINE.contains(&c) => {
                    if let Some(n) = last_value_ws {
                        value.truncate(n);
                    }
                    push(&key, &value)?;
                    S::PreKey
                }
                S::Value if c == '\\' => {
                    last_value_ws = None;
                    S::ValueEscape
                }
                S::Value => {
                    if !WS.contains(&c) {
                        last_value_ws = None;
                    } else if last_value_ws.is_none() {
                        last_value_ws = Some(value.len());
                    }
                    value.push(c);
                    S::Value
                }
                S::ValueEscape => {
                    if !NEWLINE.contains(&c) {
                        value.push(c);
                    }
                    S::Value
                }
                S::Single if c == '\'' => S::PreValue,
                S::Single => {
                    value.push(c);
                    S::Single
                }
                S::Double if c == '"' => S::PreValue,
                S::Double if c == '\\' => S::DoubleEscape,
                S::Double => {
                    value.push(c);
                    S::Double
                }
                S::DoubleEscape => {
                    if NEED_ESCAPE.contains(&c) {
                        value.push(c);
                    } else if c != '\n' {
                        value.push('\\');
                        value.push(c);
                    }
                    S::Double
                }
                S::Comment if c == '\\' => S::CommentEscape,
                S::Comment if NEWLINE.contains(&c) => S::PreKey,
                S::Comment | S::CommentEscape => S::Comment,
            };
        }
        match state {
            S::PreValue | S::Value | S::ValueEscape | S::Single | S::Double | S::DoubleEscape => {
                if let (S::Value, Some(n)) = (state, last_value_ws) {
                    value.truncate(n);
                }
                push(&key, &value)?;
            }
            _ => {}
        }
        Ok(out)
    }

    #[test]
    fn the_test_oracle_reads_systemd_env_syntax() {
        let m =
            systemd_env_file("# c\nA=1\nB = \"x \\\"y\\\" \\q\" \nC='s p'\nD=u v  \nE=\n").unwrap();
        let want: BTreeMap<String, String> = [
            ("A", "1"),
            ("B", "x \"y\" \\q"),
            ("C", "s p"),
            ("D", "u v"),
            ("E", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(m, want);
    }

    /// Variables the validator accepts: valid keys, values without newline, CR or NUL.
    fn env_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map(
            "[A-Za-z_][A-Za-z0-9_]{0,8}",
            prop_oneof!["[^\n\r\0]{0,20}", "[ -~\t]{0,20}", "[\"\\\\`$' #;=]{0,8}"],
            0..8,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(512)))]

        /// The file reads back the same through systemd's rules and the strict parser.
        #[test]
        fn env_file_round_trips_through_systemd_rules(vars in env_map()) {
            let text = render_env_file(&vars).unwrap();
            prop_assert_eq!(&systemd_env_file(&text).map_err(TestCaseError::fail)?, &vars);
            prop_assert_eq!(&parse_env_file(&text).unwrap(), &vars);
        }

        /// A value with a newline, CR or NUL is refused, naming the variable (never the value).
        #[test]
        fn env_file_refuses_unwritable_values(key in "[A-Z]{1,6}", a in "[a-z]{0,4}", bad in "[\n\r\0]", b in "[a-z]{0,4}") {
            let vars = BTreeMap::from([(key.clone(), format!("{a}{bad}{b}"))]);
            let e = render_env_file(&vars).unwrap_err().to_string();
            prop_assert!(e.starts_with(&format!("environment file: {key}: value contains")), "{}", e);
        }
    }

    // ---------------------------------------------------------------- python3 on gunicorn.conf.py

    /// Run each conf with python3 (as gunicorn does: execute the file, read its
    /// module globals) and return the named globals of each, as JSON.
    fn python_globals(confs: &[PathBuf], names: &[&str]) -> Vec<Value> {
        let python = tool("/usr/bin/python3");
        let driver = r"
import json, runpy, sys
names = json.loads(sys.argv[1])
out = []
for path in sys.argv[2:]:
    g = runpy.run_path(path)
    out.append({n: g.get(n) for n in names})
print(json.dumps(out))
";
        let output = Command::new(python)
            .arg("-c")
            .arg(driver)
            .arg(serde_json::to_string(names).unwrap())
            .args(confs)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python3: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn conf_spec(env_file: &Path) -> GunicornSpec {
        let c = Config::from_json(&json!({}), 2).unwrap();
        let mut spec = GunicornSpec::new(&c, &paths(), &[]);
        spec.env_file = env_file.to_owned();
        spec
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases((crate::cases(1600) / 100).max(16)))]

        /// raw_env, as the real python3 reads it through the rendered conf, is the
        /// input map (one python3 run per case over a batch of maps).
        #[test]
        fn env_file_round_trips_through_the_python_reader(batch in proptest::collection::vec(env_map(), 1..16)) {
            let dir = tempfile::tempdir().unwrap();
            let mut confs = Vec::new();
            for (i, vars) in batch.iter().enumerate() {
                let env = dir.path().join(format!("env{i}"));
                std::fs::write(&env, render_env_file(vars).unwrap()).unwrap();
                let conf = dir.path().join(format!("conf{i}.py"));
                std::fs::write(&conf, render_gunicorn_conf(&conf_spec(&env)).unwrap()).unwrap();
                confs.push(conf);
            }
            let got = python_globals(&confs, &["raw_env"]);
            for (vars, g) in batch.iter().zip(got) {
                let want: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                prop_assert_eq!(g["raw_env"].clone(), json!(want));
            }
        }

        /// Every string written into the conf is a Python literal of itself.
        #[test]
        fn conf_strings_are_python_literals(app in any::<String>(), wc in any::<String>(), dir in any::<String>()) {
            let tmp = tempfile::tempdir().unwrap();
            let mut spec = conf_spec(&tmp.path().join("missing"));
            spec.wsgi_app = app.clone();
            spec.worker_class = wc.clone();
            spec.chdir = PathBuf::from(&dir);
            let conf = tmp.path().join("c.py");
            std::fs::write(&conf, render_gunicorn_conf(&spec).unwrap()).unwrap();
            let got = python_globals(&[conf], &["wsgi_app", "worker_class", "chdir"]);
            prop_assert_eq!(&got[0]["wsgi_app"], &json!(app));
            prop_assert_eq!(&got[0]["worker_class"], &json!(wc));
            prop_assert_eq!(&got[0]["chdir"], &json!(dir));
        }
    }

    /// A busy conf: every setting as gunicorn will read it.
    #[test]
    fn busy_conf_settings_read_by_python() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_json(
        &json!({"port": 8080, "workers": 3, "worker_class": "gthread", "threads": 4, "max_requests": 1000,
                "wsgi_module": "app.wsgi:application", "wsgi_logfile_path": "/var/log/hello/g.log"}),
        2,
    )
    .unwrap();
        let mut spec = GunicornSpec::new(&c, &paths(), &["10.0.0.9".to_owned()]);
        spec.env_file = dir.path().join("env");
        std::fs::write(
            &spec.env_file,
            render_env_file(&BTreeMap::from([("A".into(), "1".into())])).unwrap(),
        )
        .unwrap();
        let conf = dir.path().join("c.py");
        std::fs::write(&conf, render_gunicorn_conf(&spec).unwrap()).unwrap();
        let names = [
            "bind",
            "workers",
            "worker_class",
            "threads",
            "timeout",
            "keepalive",
            "max_requests",
            "max_requests_jitter",
            "forwarded_allow_ips",
            "errorlog",
            "accesslog",
            "LOG_FILE",
            "capture_output",
            "control_socket_disable",
            "preload_app",
            "wsgi_app",
            "chdir",
            "raw_env",
        ];
        let got = python_globals(&[conf], &names);
        assert_eq!(
            got[0],
            json!({
                "bind": ["0.0.0.0:8080"], "workers": 3, "worker_class": "gthread", "threads": 4,
                "timeout": 30, "keepalive": 2, "max_requests": 1000, "max_requests_jitter": 100,
                "forwarded_allow_ips": "127.0.0.1,::1,10.0.0.9",
                // gunicorn logs to stderr (the journal); on_starting adds the file.
                "errorlog": "-", "accesslog": "-", "LOG_FILE": "/var/log/hello/g.log",
                "capture_output": true, "control_socket_disable": true, "preload_app": false,
                "wsgi_app": "app.wsgi:application", "chdir": "/srv/hello/current/app", "raw_env": ["A=1"],
            })
        );
    }

    /// A read error never raises: the first load gets [] and says why; a later
    /// load in the same master keeps the environment read before; a malformed
    /// line is skipped with a message.
    #[test]
    fn the_python_reader_never_raises() {
        let python = tool("/usr/bin/python3");
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let conf = dir.path().join("c.py");
        std::fs::write(&conf, render_gunicorn_conf(&conf_spec(&env)).unwrap()).unwrap();
        let script = r#"
import json, os, runpy, sys
conf, env = sys.argv[1], sys.argv[2]
first = runpy.run_path(conf)["raw_env"]
with open(env, "w") as f:
    f.write('# x\nA="1"\nB=unquoted\nC="2"\n')
second = runpy.run_path(conf)["raw_env"]
os.remove(env)
third = runpy.run_path(conf)["raw_env"]
with open(env, "wb") as f:
    f.write(b'A="\xff"\n')
fourth = runpy.run_path(conf)["raw_env"]
print(json.dumps([first, second, third, fourth]))
"#;
        let out = Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(&conf)
            .arg(&env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            got,
            json!([[], ["A=1", "C=2"], ["A=1", "C=2"], ["A=1", "C=2"]])
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot read"), "{stderr}");
        assert!(
            stderr.contains(":3: not KEY=\"value\", skipped"),
            "{stderr}"
        );
    }

    // ---------------------------------------------------------------- systemd-analyze verify

    /// `systemd-analyze verify` against a scratch root (env-probe.md §1): clean
    /// means rc 0 and no output at all, warnings included.
    fn verify_clean(unit: &str, socket: &str, paths: &AppPaths) {
        let analyze = tool("/usr/bin/systemd-analyze");
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("lib/systemd")).unwrap();
        // Without the system units: "Unit sysinit.target not found."
        let status = Command::new("cp")
            .args(["-a", "/lib/systemd/system"])
            .arg(r.join("lib/systemd/"))
            .status();
        assert!(status.unwrap().success());
        for exe in [paths.gunicorn.as_path(), Path::new("/bin/kill")] {
            let p = r.join(exe.strip_prefix("/").unwrap());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let unit_path = r.join(paths.unit_file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(unit_path.parent().unwrap()).unwrap();
        std::fs::write(&unit_path, unit).unwrap();
        std::fs::write(r.join(paths.socket_file.strip_prefix("/").unwrap()), socket).unwrap();
        let out = Command::new(analyze)
            .arg("verify")
            .arg(format!("--root={}", r.display()))
            .arg(&paths.unit_file)
            .arg(&paths.socket_file)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "systemd-analyze verify: rc {:?}\n{}{}\n{unit}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn systemd_analyze_verify_is_clean() {
        let p = paths();
        let relations = RelationInputs {
            env: BTreeMap::from([("DATABASE_URL".into(), "postgresql://u:p%40ss@h/d".into())]),
            proxies: vec!["10.0.0.9".into()],
        };
        for j in [
            json!({}),
            json!({"port": 8080, "wsgi_logfile_path": ""}),
            json!({"port": 443, "extra_gunicorn_args": "--graceful-timeout 60 --forwarded-allow-ips=* --access-logformat '%(h)s \"%(r)s\" $x \\\\ ;'"}),
        ] {
            let c = Config::from_json(&j, 2).unwrap();
            let serving = Serving {
                id: 3,
                venv: "venv".into(),
                source: "src".into(),
            };
            let state = DesiredState::render(&c, &layer(), &p, &relations, &serving).unwrap();
            assert!(!state.unit.contains("p%40ss"), "secrets never in the unit");
            verify_clean(&state.unit, &state.socket, &p);
        }
    }

    #[test]
    fn merged_relations_reach_the_env_file_not_the_unit() {
        let c = Config::from_json(&json!({"environment_variables": "SECRET=s3cr3t"}), 2).unwrap();
        let env = merge(
            &c.environment_variables,
            &BTreeMap::from([("MONGO_URL".into(), "mongodb://h".into())]),
        );
        let text = render_env_file(&env).unwrap();
        assert!(
            text.contains("SECRET=\"s3cr3t\"\n") && text.contains("MONGO_URL=\"mongodb://h\"\n")
        );
        let unit = render_unit(&UnitSpec::new(&c, &layer(), &paths())).unwrap();
        assert!(!unit.contains("s3cr3t"));
        let directives = parse_unit(&unit).unwrap();
        assert!(
            !directives.iter().any(|(_, k, v)| k == "EnvironmentFile"
                || (k == "Environment" && !v.starts_with("PATH=")))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::cases(512)))]

        /// Any accepted map, written as shell words (values quoted), parses back
        /// to itself; values may hold `=`, spaces, quotes and `#`.
        #[test]
        fn environment_variables_option_round_trips(vars in env_map()) {
            let vars: BTreeMap<String, String> = vars
                .into_iter()
                .filter(|(k, _)| !envvars::RESERVED.iter().any(|(r, _)| r == k))
                .collect();
            let text = vars
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_words::quote(v)))
                .collect::<Vec<_>>()
                .join(" ");
            prop_assert_eq!(envvars::parse(&text).unwrap(), vars);
        }
    }
}
