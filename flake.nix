{
  description = "popdescent: the reproduction environment (nix develop)";

  # nixpkgs is pinned by flake.lock (nixos-24.11, rev 50ab793786d9de88ee30ec4e4c24fb4236fc2674).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # keras-tuner and its small helper are built from their PyPI source distributions,
      # pinned by hash, so the shell does not depend on whether nixpkgs packages them.
      pythonFor = pkgs: pkgs.python311.override {
        packageOverrides = final: prev: {
          kt-legacy = final.buildPythonPackage rec {
            pname = "kt-legacy";
            version = "1.0.5";
            src = final.fetchPypi {
              inherit pname version;
              hash = "sha256-27reWPEsam2mBi9LBFpjlajUGVgV4+BkvD5gm2nIomw=";
            };
            doCheck = false;
          };
          keras-tuner = final.buildPythonPackage rec {
            pname = "keras_tuner";
            version = "1.4.8";
            pyproject = true;
            src = final.fetchPypi {
              inherit pname version;
              hash = "sha256-gJ54U46lyOBIAS7x1oBxLVbyjPnfpJOKLarOGrMMSCg=";
            };
            build-system = [ final.setuptools ];
            dependencies = [ final.keras final.packaging final.requests final.kt-legacy ];
            doCheck = false;
          };
        };
      };
    in
    {
      devShells = forAllSystems (pkgs:
        let
          python = (pythonFor pkgs).withPackages (ps: [
            ps.tensorflow
            ps.keras
            ps.keras-tuner
            ps.tensorboard
            ps.numpy
            ps.matplotlib
            ps.scikit-learn
            ps.pytest
            ps.pytest-timeout
            ps.pytest-xdist
            ps.setuptools
            ps.pip
          ]);
        in
        {
          default = pkgs.mkShell {
            packages = [ python ];
            # This package in development mode: the clone's root on the path, no install step,
            # so edits take effect at once (as `pip install -e .` would).
            shellHook = ''
              export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
              export KERAS_BACKEND=tensorflow
              echo "popdescent dev shell: $(python --version); run: python -m pytest"
            '';
          };
        });
    };
}
